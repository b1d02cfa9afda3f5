//! What `certs export` and `certs import --from` do where the command runs: write the files a
//! reply carries, and read an import list.

use std::path::Path;

use sectigo_engine::deploy::{files, FileSet};
use sectigo_engine::{parse_import_lines, ImportLine};

use crate::api::{ApiError, ErrorKind, Reply, Response};
use crate::exit::{CliError, Exit};

/// `certs export`: writes the files the reply carries into `out`, here, as this user.
pub fn write_export(reply: Reply, out: Option<&Path>) -> Reply {
    let (
        Some(out),
        Ok(Response::Exported {
            id,
            name,
            cert,
            chain,
            mode,
            private_key,
        }),
    ) = (out, &reply)
    else {
        return reply;
    };
    let cfg = sectigo_core::config::DeployConfig {
        dir: out.to_path_buf(),
        hook: None,
        owner: None,
        group: None,
        mode: *mode,
    };
    let set = FileSet {
        cert: cert.clone(),
        chain: chain.clone(),
        key: private_key.clone().map(sectigo_core::secret::Secret::new),
    };
    let stamp = super::now().timestamp_nanos_opt().unwrap_or_default();
    match files::write_set(&cfg, name, id, &set, stamp) {
        Ok(_) => reply,
        Err(e) => Err(ApiError::new(
            ErrorKind::Failed,
            format!("certs export {id}: {e}"),
        )),
    }
}

pub fn read_import_list(f: &Path) -> Result<Vec<ImportLine>, CliError> {
    // A line is an id, an issue key, perhaps a comment: 64 KiB is no line of a real list.
    let read = |r: &mut dyn std::io::BufRead| match sectigo_core::lines::read_to_string(r, 64 << 10)
    {
        Err(e @ sectigo_core::lines::LineError::Io { .. }) => Err(CliError::new(Exit::Failed, e)),
        r => r.map_err(|e| CliError::usage(format!("{}: {e}, nothing imported", f.display()))),
    };
    let text = if f == Path::new("-") {
        read(&mut std::io::stdin().lock())?
    } else {
        let file = std::fs::File::open(f)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", f.display())))?;
        read(&mut std::io::BufReader::new(file))?
    };
    parse_import_lines(&text).map_err(|errs| {
        CliError::usage(format!(
            "{}: {}, nothing imported:\n  {}",
            f.display(),
            sectigo_core::text::count(errs.len() as u64, "bad line", "bad lines"),
            errs.join("\n  ")
        ))
    })
}
