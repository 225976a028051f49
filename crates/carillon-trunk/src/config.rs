//! Loading `trunks.toml`: TOML text → validated [`TrunkSet`], or every
//! problem found, each as `file:line: dotted.key: message`.
//!
//! Owns the schema (documented in the crate root) and its checks. The text
//! is parsed with `toml_edit`, whose document keeps the byte span of every
//! key and value; it is turned into a small tree of nodes with line numbers
//! and walked once, collecting problems instead of stopping at the first.
//! Unknown keys are problems, so a typo never passes silently.

use std::collections::BTreeMap;
use std::time::Duration;

use carillon_mediactl::DtmfMode;
use carillon_sip::Uri;
use carillon_tomlconf::{join, Entry, Kind, Loader, Node};

use crate::cidr::IpNet;
use crate::model::{
    Codec, Credentials, GatewayConfig, PortConfig, PortName, PortRoute, PortStrategy,
    QualifyConfig, RegistrationConfig, TrunkConfig, TrunkKind, TrunkName, TrunkSet,
};

pub use carillon_tomlconf::ConfigProblem;

const TRUNK_KEYS: &[&str] = &[
    "enabled",
    "kind",
    "contacts",
    "identify",
    "username",
    "password",
    "from_user",
    "from_domain",
    "send_pai",
    "register",
    "registrar",
    "expiry",
    "qualify_secs",
    "qualify_timeout_secs",
    "max_calls",
    "max_cps",
    "context",
    "allow",
    "numbering",
    "dtmf_mode",
    "ports",
    "port_strategy",
    "port_cooldown_secs",
];

const PORT_KEYS: &[&str] = &["name", "contact", "prefix", "max_calls"];

const DEFAULT_EXPIRY: u32 = 3600;
const DEFAULT_QUALIFY_TIMEOUT: i64 = 2;
const DEFAULT_COOLDOWN: i64 = 60;

/// Trunk-specific readers on top of the shared loader.
trait TrunkLoader {
    fn sip_uri(&mut self, path: &str, line: usize, text: &str) -> Option<(String, String)>;
}

impl TrunkLoader for Loader<'_> {
    /// A SIP or SIPS URI; returns it and its host.
    fn sip_uri(&mut self, path: &str, line: usize, text: &str) -> Option<(String, String)> {
        match Uri::parse(text) {
            Ok(uri) if uri.is_sip() && !uri.host.is_empty() => {
                Some((text.to_owned(), uri.host.to_owned()))
            }
            Ok(_) => {
                self.report(line, path, format!("'{text}' is not a sip: or sips: URI"));
                None
            }
            Err(e) => {
                self.report(line, path, format!("'{text}' is not a SIP URI: {e}"));
                None
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b))
}

fn u32_of(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

/// Loads and validates a trunks file. `file_name` only labels problems.
/// On failure every problem found is returned, sorted by line.
/// Placeholders left in an enabled trunk come back as the set's
/// [`TrunkSet::warnings`].
pub fn load(file_name: &str, text: &str) -> Result<TrunkSet, Vec<ConfigProblem>> {
    carillon_tomlconf::load(file_name, text, |lo, root| {
        let trunks = load_root(lo, root);
        let mut warnings = Vec::new();
        if let Kind::Table(entries) = &root.kind {
            for entry in entries.iter().filter(|e| e.key == "trunk") {
                let Kind::Table(tables) = &entry.value.kind else {
                    continue;
                };
                for t in tables {
                    let enabled = trunks.iter().any(|c| c.enabled && c.name.as_str() == t.key);
                    if enabled {
                        let path = join("trunk", &t.key);
                        placeholders(file_name, &path, &t.value, &mut warnings);
                    }
                }
            }
        }
        Some(TrunkSet::new(trunks, warnings))
    })
}

/// Marks the example `trunks.toml` uses for values to fill in.
const PLACEHOLDER: &str = "CHANGE-ME";

/// Whether `text` (a SIP URI or a bare host) names a host under the
/// reserved `.example` top-level domain (RFC 2606).
fn is_example_host(text: &str) -> bool {
    let host = match Uri::parse(text) {
        Ok(uri) if uri.is_sip() => uri.host.to_ascii_lowercase(),
        _ => text.to_ascii_lowercase(),
    };
    let host = host.trim_end_matches('.');
    host == "example" || host.ends_with(".example")
}

/// Every string value under `node` that still holds a `CHANGE-ME`
/// placeholder or an `.example` host, as a warning.
fn placeholders(file: &str, path: &str, node: &Node, out: &mut Vec<ConfigProblem>) {
    match &node.kind {
        Kind::Str(text) => {
            let message = if text.contains(PLACEHOLDER) {
                format!("'{text}' is still a {PLACEHOLDER} placeholder: fill it in, or set enabled = false")
            } else if is_example_host(text) {
                format!("'{text}' is an example host (.example): put the real one, or set enabled = false")
            } else {
                return;
            };
            out.push(ConfigProblem {
                file: file.to_owned(),
                line: node.line,
                key: path.to_owned(),
                message,
            });
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                placeholders(file, &format!("{path}[{i}]"), item, out);
            }
        }
        Kind::Table(entries) => {
            for e in entries {
                placeholders(file, &join(path, &e.key), &e.value, out);
            }
        }
        _ => {}
    }
}

fn load_root(lo: &mut Loader<'_>, root: &Node) -> Vec<TrunkConfig> {
    let mut trunks = Vec::new();
    let Some(mut fields) = lo.fields("", root) else {
        return trunks;
    };
    let trunk_node = fields.get("trunk");
    lo.finish(fields, &["trunk"], "the trunks file");
    let Some((path, node)) = trunk_node else {
        return trunks;
    };
    let Kind::Table(entries) = &node.kind else {
        lo.expected(&path, node, "[trunk.NAME] tables");
        return trunks;
    };
    // identify networks seen so far: network → (trunk, line)
    let mut seen: BTreeMap<IpNet, (String, usize)> = BTreeMap::new();
    for Entry {
        key: name,
        value: trunk_node,
    } in entries
    {
        let trunk_path = join(&path, name);
        if !is_name(name) {
            lo.report(
                trunk_node.line,
                &trunk_path,
                format!("bad trunk name '{name}' (letters, digits, '_', '-', '.', '+' only)"),
            );
        }
        if let Some(trunk) = load_trunk(lo, &trunk_path, name, trunk_node, &mut seen) {
            trunks.push(trunk);
        }
    }
    trunks
}

fn load_trunk(
    lo: &mut Loader<'_>,
    path: &str,
    name: &str,
    node: &Node,
    seen: &mut BTreeMap<IpNet, (String, usize)>,
) -> Option<TrunkConfig> {
    let problems_before = lo.problems().len();
    let mut f = lo.fields(path, node)?;
    let line = f.line;
    let enabled = f
        .get("enabled")
        .and_then(|(p, n)| lo.boolean(&p, n))
        .unwrap_or(true);

    let kind = match f.get("kind") {
        Some((p, n)) => match lo.string(&p, n) {
            Some("carrier") => Some(TrunkKind::Carrier),
            Some("gsm_gateway") => Some(TrunkKind::GsmGateway),
            Some(other) => {
                lo.report(
                    n.line,
                    &p,
                    format!("unknown kind '{other}' (expected \"carrier\" or \"gsm_gateway\")"),
                );
                None
            }
            None => None,
        },
        None => {
            lo.report(line, &join(path, "kind"), "a trunk needs 'kind'");
            None
        }
    };

    let mut contacts: Vec<String> = Vec::new();
    let contacts_entry = f.get("contacts");
    if let Some((p, n)) = &contacts_entry {
        for (item_path, item_line, text) in lo.strings(p, n) {
            if let Some((uri, _)) = lo.sip_uri(&item_path, item_line, text) {
                if contacts.contains(&uri) {
                    lo.report(item_line, &item_path, format!("'{uri}' is listed twice"));
                } else {
                    contacts.push(uri);
                }
            }
        }
    }
    let failover_len = contacts.len();

    let mut identify = Vec::new();
    if let Some((p, n)) = f.get("identify") {
        for (item_path, item_line, text) in lo.strings(&p, n) {
            match text.parse::<IpNet>() {
                Ok(net) => match seen.get(&net) {
                    Some((other, other_line)) => lo.report(
                        item_line,
                        &item_path,
                        format!(
                            "{net} is already identified as trunk '{other}' at line {other_line}"
                        ),
                    ),
                    None => {
                        seen.insert(net, (name.to_owned(), item_line));
                        identify.push(net);
                    }
                },
                Err(e) => lo.report(item_line, &item_path, e.to_string()),
            }
        }
    }

    let username_entry = f.get("username");
    let username = username_entry.as_ref().and_then(|(p, n)| lo.nonempty(p, n));
    let password_entry = f.get("password");
    let password = password_entry
        .as_ref()
        .and_then(|(p, n)| lo.string(p, n).map(str::to_owned));
    let credentials = match (username_entry, password_entry) {
        (Some((_, n)), None) => {
            lo.report(
                n.line,
                &join(path, "password"),
                "'username' needs 'password'",
            );
            None
        }
        (None, Some((_, n))) => {
            lo.report(
                n.line,
                &join(path, "username"),
                "'password' needs 'username'",
            );
            None
        }
        _ => username
            .zip(password)
            .map(|(username, password)| Credentials { username, password }),
    };

    let from_user = f.get("from_user").and_then(|(p, n)| lo.nonempty(&p, n));
    let from_domain = f.get("from_domain").and_then(|(p, n)| lo.nonempty(&p, n));
    let send_pai = f
        .get("send_pai")
        .and_then(|(p, n)| lo.boolean(&p, n))
        .unwrap_or(false);

    let register = f.get("register").map(|(p, n)| (lo.boolean(&p, n), n.line));
    let registrar = f.get("registrar").and_then(|(p, n)| {
        let text = lo.string(&p, n)?;
        lo.sip_uri(&p, n.line, text)
    });
    let expiry = f
        .get("expiry")
        .map(|(p, n)| lo.integer(&p, n, 60, 604_800).and_then(u32_of));
    let registration = match register {
        Some((Some(true), rline)) => {
            let rpath = join(path, "register");
            if credentials.is_none() {
                lo.report(
                    rline,
                    &rpath,
                    "register = true needs 'username' and 'password'",
                );
            }
            match registrar {
                Some((registrar, domain)) => Some(RegistrationConfig {
                    registrar,
                    domain,
                    expiry: expiry.flatten().unwrap_or(DEFAULT_EXPIRY),
                }),
                None => {
                    lo.report(rline, &rpath, "register = true needs 'registrar'");
                    None
                }
            }
        }
        _ => None,
    };

    let qualify_secs = f
        .get("qualify_secs")
        .map(|(p, n)| (lo.integer(&p, n, 0, 86_400), n.line));
    let qualify_timeout = f
        .get("qualify_timeout_secs")
        .and_then(|(p, n)| lo.integer(&p, n, 1, 64));
    let qualify = match qualify_secs {
        Some((Some(secs), qline)) if secs > 0 => {
            let timeout = qualify_timeout.unwrap_or(DEFAULT_QUALIFY_TIMEOUT);
            if timeout >= secs {
                lo.report(
                    qline,
                    &join(path, "qualify_secs"),
                    format!("qualify_secs ({secs}) must be longer than qualify_timeout_secs ({timeout})"),
                );
            }
            Some(QualifyConfig {
                interval: Duration::from_secs(secs.unsigned_abs()),
                timeout: Duration::from_secs(timeout.unsigned_abs()),
            })
        }
        _ => None,
    };

    let max_calls = f
        .get("max_calls")
        .and_then(|(p, n)| lo.integer(&p, n, 1, 100_000))
        .and_then(u32_of);
    let max_cps = f
        .get("max_cps")
        .and_then(|(p, n)| lo.integer(&p, n, 1, 10_000))
        .and_then(u32_of);
    let context = f.get("context").and_then(|(p, n)| {
        let s = lo.string(&p, n)?;
        if is_name(s) {
            Some(s.to_owned())
        } else {
            lo.report(n.line, &p, format!("bad context name '{s}'"));
            None
        }
    });
    let mut allow = Vec::new();
    match f.get("allow") {
        Some((p, n)) => {
            for (item_path, item_line, text) in lo.strings(&p, n) {
                match Codec::parse(text) {
                    Some(c) if allow.contains(&c) => {
                        lo.report(item_line, &item_path, format!("'{text}' is listed twice"));
                    }
                    Some(c) if !c.is_available() => lo.report(
                        item_line,
                        &item_path,
                        format!("codec '{text}' is not available yet (the media plane has ulaw and alaw)"),
                    ),
                    Some(c) => allow.push(c),
                    None => lo.report(
                        item_line,
                        &item_path,
                        format!("unknown codec '{text}' (expected ulaw or alaw)"),
                    ),
                }
            }
            if allow.is_empty() && matches!(&n.kind, Kind::Array(a) if a.is_empty()) {
                lo.report(n.line, &p, "must list at least one codec");
            }
        }
        None => allow = vec![Codec::Ulaw, Codec::Alaw],
    }
    let numbering = f.get("numbering").and_then(|(p, n)| {
        let s = lo.string(&p, n)?;
        if is_name(s) {
            Some(s.to_owned())
        } else {
            lo.report(n.line, &p, format!("bad numbering rule set name '{s}'"));
            None
        }
    });

    let dtmf_mode = match f.get("dtmf_mode") {
        Some((p, n)) => match lo.string(&p, n) {
            Some(s) => DtmfMode::from_name(s).unwrap_or_else(|| {
                lo.report(
                    n.line,
                    &p,
                    format!("unknown dtmf_mode '{s}' (expected \"rfc4733\", \"info\", \"inband\" or \"auto\")"),
                );
                DtmfMode::default()
            }),
            None => DtmfMode::default(),
        },
        None => DtmfMode::default(),
    };

    let ports = f.get("ports");
    let strategy = f.get("port_strategy");
    let cooldown = f.get("port_cooldown_secs");
    let gateway = match kind {
        Some(TrunkKind::GsmGateway) => {
            let strategy = match strategy {
                Some((p, n)) => match lo.string(&p, n) {
                    Some("round_robin") => PortStrategy::RoundRobin,
                    Some("least_used") => PortStrategy::LeastUsed,
                    Some(other) => {
                        lo.report(
                            n.line,
                            &p,
                            format!("unknown port_strategy '{other}' (expected \"round_robin\" or \"least_used\")"),
                        );
                        PortStrategy::RoundRobin
                    }
                    None => PortStrategy::RoundRobin,
                },
                None => PortStrategy::RoundRobin,
            };
            let cooldown = cooldown
                .and_then(|(p, n)| lo.integer(&p, n, 0, 86_400))
                .unwrap_or(DEFAULT_COOLDOWN);
            let ports = match ports {
                Some((p, n)) => load_ports(lo, &p, n, &mut contacts, failover_len),
                None => {
                    lo.report(line, &join(path, "ports"), "a gsm_gateway needs 'ports'");
                    Vec::new()
                }
            };
            Some(GatewayConfig {
                ports,
                strategy,
                cooldown: Duration::from_secs(cooldown.unsigned_abs()),
            })
        }
        _ => {
            for (key, entry) in [
                ("ports", ports),
                ("port_strategy", strategy),
                ("port_cooldown_secs", cooldown),
            ] {
                if let Some((p, n)) = entry {
                    if kind.is_some() {
                        lo.report(
                            n.line,
                            &p,
                            format!("'{key}' is only for kind = \"gsm_gateway\""),
                        );
                    }
                }
            }
            None
        }
    };

    match contacts_entry {
        None if kind == Some(TrunkKind::Carrier) => {
            lo.report(
                line,
                &join(path, "contacts"),
                "a carrier trunk needs 'contacts'",
            );
        }
        Some((p, n)) if matches!(&n.kind, Kind::Array(a) if a.is_empty()) => {
            lo.report(n.line, &p, "must list at least one SIP URI");
        }
        _ => {}
    }

    lo.finish(f, TRUNK_KEYS, "a trunk");
    if lo.problems().len() != problems_before {
        return None;
    }
    Some(TrunkConfig {
        name: TrunkName::new(name),
        enabled,
        kind: kind?,
        contacts,
        failover_len,
        identify,
        credentials,
        from_user,
        from_domain,
        send_pai,
        registration,
        qualify,
        max_calls,
        max_cps,
        context,
        allow,
        numbering,
        dtmf_mode,
        gateway,
    })
}

fn load_ports(
    lo: &mut Loader<'_>,
    path: &str,
    node: &Node,
    contacts: &mut Vec<String>,
    failover_len: usize,
) -> Vec<PortConfig> {
    let Kind::Array(items) = &node.kind else {
        lo.expected(path, node, "an array of port tables");
        return Vec::new();
    };
    if items.is_empty() {
        lo.report(node.line, path, "a gsm_gateway needs at least one port");
    }
    let mut ports: Vec<PortConfig> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some(mut f) = lo.fields(&item_path, item) else {
            continue;
        };
        let name = match f.get("name") {
            Some((p, n)) => lo.string(&p, n).and_then(|s| {
                if !is_name(s) {
                    lo.report(n.line, &p, format!("bad port name '{s}'"));
                    None
                } else if let Some(first) = names.get(s) {
                    lo.report(
                        n.line,
                        &p,
                        format!("port '{s}' is already defined at line {first}"),
                    );
                    None
                } else {
                    names.insert(s.to_owned(), n.line);
                    Some(s.to_owned())
                }
            }),
            None => {
                lo.report(item.line, &join(&item_path, "name"), "a port needs 'name'");
                None
            }
        };
        let contact = f.get("contact").and_then(|(p, n)| {
            let text = lo.string(&p, n)?;
            lo.sip_uri(&p, n.line, text).map(|(uri, _)| uri)
        });
        let prefix = f.get("prefix").and_then(|(p, n)| {
            let s = lo.string(&p, n)?;
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            {
                Some(s.to_owned())
            } else {
                lo.report(
                    n.line,
                    &p,
                    format!("prefix '{s}' must be digits, '*' or '#'"),
                );
                None
            }
        });
        let max_calls = f
            .get("max_calls")
            .and_then(|(p, n)| lo.integer(&p, n, 1, 64))
            .and_then(u32_of)
            .unwrap_or(1);
        let had_route_keys = f.has("contact") || f.has("prefix");
        lo.finish(f, PORT_KEYS, "a port");
        let route = match (contact, prefix) {
            (Some(uri), None) => {
                let index = match contacts.iter().position(|c| *c == uri) {
                    Some(index) => index,
                    None => {
                        contacts.push(uri);
                        contacts.len() - 1
                    }
                };
                Some(PortRoute::Contact(index))
            }
            (None, Some(prefix)) => {
                if failover_len == 0 {
                    lo.report(
                        item.line,
                        &join(&item_path, "prefix"),
                        "a prefix port needs the gateway's 'contacts' (the one SIP peer the prefix is sent to)",
                    );
                }
                Some(PortRoute::Prefix(prefix))
            }
            (Some(_), Some(_)) => {
                lo.report(
                    item.line,
                    &item_path,
                    "a port has either 'contact' or 'prefix', not both",
                );
                None
            }
            (None, None) => {
                if !had_route_keys {
                    lo.report(item.line, &item_path, "a port needs 'contact' or 'prefix'");
                }
                None
            }
        };
        if let (Some(name), Some(route)) = (name, route) {
            ports.push(PortConfig {
                name: PortName::new(name),
                route,
                max_calls,
            });
        }
    }
    ports
}
