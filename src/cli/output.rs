//! What a command writes: a reply as text or JSON, `status --check`'s lines, and the question
//! a billable request asks at a terminal.

use crate::api::{Reply, Request, Response};
use crate::exit::{self, Exit};

use crate::render;

/// `s` for a terminal: no control character but newlines and tabs (what SCM or Jira said is
/// escaped where it is shown, by `render`; this is the last guard).
fn for_terminal(s: &str) -> String {
    sectigo_core::text::EscapedLines(s).to_string()
}

/// Writes to standard output. A reader that went away (`| head -1`) ends the command quietly,
/// as it does for cat or grep, instead of a panic.
pub fn write_out(s: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("sectigo-connector: writing the output: {e}");
    }
}

/// Prints a reply, as text or as JSON, and returns its exit code.
pub fn emit(reply: Reply, json: bool) -> i32 {
    match reply {
        Ok(r) => {
            if json {
                write_out(&render::json(&r));
            } else {
                let (out, err) = render::text(&r, super::now());
                write_out(&for_terminal(&out));
                eprint!("{}", for_terminal(&err));
            }
            exit::for_response(&r).code()
        }
        Err(e) => {
            eprintln!("error: {}", for_terminal(&e.message));
            Exit::from(e.kind).code()
        }
    }
}

/// `status --check`: the lines that need a person, and 1 if there are any.
pub fn emit_check(reply: Reply) -> i32 {
    match reply {
        Ok(Response::Status(s)) => {
            let lines = render::needs_a_person(&s);
            if lines.is_empty() {
                write_out("OK: nothing needs a person\n");
                Exit::Ok.code()
            } else {
                write_out(&for_terminal(
                    &lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
                ));
                Exit::Failed.code()
            }
        }
        other => emit(other, false),
    }
}

/// A billable request the service wants confirmed: on a terminal, shows what it bills and
/// asks; `Some(the request with yes)` when the person says yes. Elsewhere `None` (the error,
/// which says to add --yes, is the answer).
pub fn confirmed(request: &Request, what: &str) -> Option<Request> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let text = what.trim_end_matches("run it again with --yes").trim_end();
    // The message names certificates (their CN is SCM's text): escaped, one line per line.
    eprint!(
        "{}\nProceed? [y/N] ",
        sectigo_core::text::EscapedLines(text)
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return None;
    }
    match request.clone() {
        Request::Renew { ids, .. } => Some(Request::Renew { ids, yes: true }),
        Request::ForceRenew { profile, .. } => Some(Request::ForceRenew { profile, yes: true }),
        Request::CertsForget { id, .. } => Some(Request::CertsForget { id, yes: true }),
        Request::CertsApply { .. } => Some(Request::CertsApply { yes: true }),
        Request::CertsRevoke { id, reason, .. } => Some(Request::CertsRevoke {
            id,
            reason,
            yes: true,
        }),
        _ => None,
    }
}
