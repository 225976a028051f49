//! Editing the example TOML config as text for end-to-end tests (shared by
//! the `common` and `callsupport` harnesses through `#[path]`).

/// Sets `key = value` inside `[section]` of a TOML text: lines with those
/// keys in that section are dropped (a multi-line array with them) and
/// the new values are written right under the section header; a missing
/// section is appended.
pub fn set_keys<K: AsRef<str>>(text: &str, section: &str, keys: &[(K, String)]) -> String {
    let header = format!("[{section}]");
    let mut out = String::new();
    let mut current = String::new();
    let mut found = false;
    let mut skipping_array = false;
    for line in text.lines() {
        let t = line.trim();
        if skipping_array {
            if t.contains(']') {
                skipping_array = false;
            }
            continue;
        }
        if t.starts_with('[') {
            current = t.split('#').next().unwrap_or("").trim().to_owned();
            out.push_str(line);
            out.push('\n');
            if current == header {
                found = true;
                for (k, v) in keys {
                    out.push_str(&format!("{} = {v}\n", k.as_ref()));
                }
            }
            continue;
        }
        if current == header {
            let key = t.split('=').next().unwrap_or("").trim();
            if t.contains('=') && keys.iter().any(|(k, _)| k.as_ref() == key) {
                let value = t.split_once('=').map_or("", |(_, v)| v.trim());
                if value.starts_with('[') && !value.contains(']') {
                    skipping_array = true;
                }
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("\n{header}\n"));
        for (k, v) in keys {
            out.push_str(&format!("{} = {v}\n", k.as_ref()));
        }
    }
    out
}
