//! Reading a file of lines whose length is bounded (a state export, an import list): a line
//! longer than the bound is refused after reading at most one byte past it, so a file that is
//! one endless line costs the bound in memory, not the file's size.

use std::io::{BufRead, Read};

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line {line} is longer than {max} bytes")]
    TooLong { line: u64, max: usize },
    #[error("line {line} is not UTF-8 text")]
    NotUtf8 { line: u64 },
    #[error("line {line}: {error}")]
    Io { line: u64, error: std::io::Error },
}

impl LineError {
    /// The number (from 1) of the line that could not be read.
    pub fn line(&self) -> u64 {
        match self {
            LineError::TooLong { line, .. }
            | LineError::NotUtf8 { line }
            | LineError::Io { line, .. } => *line,
        }
    }
}

/// The lines of `r`, without their `\n` or `\r\n`, each at most `max` bytes; after an error,
/// nothing more. Only one line is held at a time.
pub fn capped<R: BufRead>(r: R, max: usize) -> CappedLines<R> {
    CappedLines {
        r,
        max,
        line: 0,
        done: false,
    }
}

/// All of `r` as text, each line at most `max` bytes; lines end with `\n`.
pub fn read_to_string(r: impl BufRead, max: usize) -> Result<String, LineError> {
    let mut out = String::new();
    for line in capped(r, max) {
        out.push_str(&line?);
        out.push('\n');
    }
    Ok(out)
}

/// See [`capped`].
pub struct CappedLines<R> {
    r: R,
    max: usize,
    line: u64,
    done: bool,
}

impl<R: BufRead> Iterator for CappedLines<R> {
    type Item = Result<String, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.line += 1;
        let line = self.line;
        let mut buf = Vec::new();
        // The line, its end, and one byte more: a line of `max` bytes and its `\r\n` fit.
        let limit = self.max as u64 + 2;
        let r = (&mut self.r).take(limit).read_until(b'\n', &mut buf);
        let result = match r {
            Err(error) => Err(LineError::Io { line, error }),
            Ok(0) => {
                self.done = true;
                return None;
            }
            Ok(_) => {
                let ended = buf.last() == Some(&b'\n');
                if ended {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                if buf.len() > self.max {
                    Err(LineError::TooLong {
                        line,
                        max: self.max,
                    })
                } else {
                    String::from_utf8(buf).map_err(|_| LineError::NotUtf8 { line })
                }
            }
        };
        self.done = result.is_err();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8], max: usize) -> Vec<Result<String, String>> {
        capped(text, max)
            .map(|l| l.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn lines_as_bufread_gives_them() {
        let ok = |v: &[&str]| -> Vec<Result<String, String>> {
            v.iter().map(|s| Ok(s.to_string())).collect()
        };
        assert_eq!(read(b"", 4), ok(&[]));
        assert_eq!(read(b"a\nbb\r\n\ncccc", 4), ok(&["a", "bb", "", "cccc"]));
        assert_eq!(read(b"abcd\n", 4), ok(&["abcd"]));
        assert_eq!(read(b"abcd\r\n", 4), ok(&["abcd"]));
        assert_eq!(read(b"abcd\r\nx\n", 4), ok(&["abcd", "x"]));
    }

    #[test]
    fn a_long_line_is_refused_with_its_number_and_ends_the_reading() {
        for text in [&b"ok\nabcde\nnext\n"[..], b"ok\nabcde", b"ok\nabcd\r\r\n"] {
            assert_eq!(
                read(text, 4),
                vec![
                    Ok("ok".to_string()),
                    Err("line 2 is longer than 4 bytes".to_string())
                ],
                "{text:?}"
            );
        }
        assert_eq!(
            read(b"\xff\nx", 4),
            vec![Err("line 1 is not UTF-8 text".to_string())]
        );
    }

    #[test]
    fn whole_text_with_capped_lines() {
        assert_eq!(read_to_string(&b"a\r\nb"[..], 4).unwrap(), "a\nb\n");
        let e = read_to_string(&b"a\nbbbbb\n"[..], 4).unwrap_err();
        assert_eq!(e.to_string(), "line 2 is longer than 4 bytes");
    }

    #[test]
    fn an_endless_line_is_not_read_past_the_bound() {
        // A reader that never ends: the refusal must come from the bound, not the end.
        let endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let mut it = capped(endless, 1 << 20);
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.line(), 1);
        assert!(matches!(e, LineError::TooLong { max, .. } if max == 1 << 20));
        assert!(it.next().is_none());
    }
}
