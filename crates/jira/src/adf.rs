//! Atlassian Document Format, the comment body of Jira Cloud's REST v3.

use serde_json::{json, Value};

/// A document of one paragraph per block of text (blocks separated by blank lines); lines
/// inside a block are joined with hard breaks.
pub fn document(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let mut content = Vec::new();
            for (i, line) in p.lines().enumerate() {
                if i > 0 {
                    content.push(json!({ "type": "hardBreak" }));
                }
                if !line.is_empty() {
                    content.push(json!({ "type": "text", "text": line }));
                }
            }
            json!({ "type": "paragraph", "content": content })
        })
        .collect();
    json!({ "type": "doc", "version": 1, "content": paragraphs })
}

/// The plain text of a document (text nodes, with breaks as newlines).
pub fn text(doc: &Value) -> String {
    let mut out = String::new();
    walk(doc, &mut out);
    out
}

fn walk(v: &Value, out: &mut String) {
    match v["type"].as_str() {
        Some("text") => out.push_str(v["text"].as_str().unwrap_or("")),
        Some("hardBreak") => out.push('\n'),
        _ => {}
    }
    if let Some(children) = v["content"].as_array() {
        for c in children {
            walk(c, out);
        }
        if v["type"] == "paragraph" {
            out.push_str("\n\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = "Certificate renewed.\nOld: 1\nNew: 2\n\n[sectigo-connector renewed:1]";
        let d = document(t);
        assert_eq!(d["type"], "doc");
        assert_eq!(d["version"], 1);
        assert_eq!(d["content"].as_array().unwrap().len(), 2);
        assert_eq!(d["content"][0]["content"][1]["type"], "hardBreak");
        assert_eq!(text(&d).trim_end(), t);
    }
}
