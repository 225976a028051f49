//! AMI permission classes (Asterisk's `manager.conf` `read`/`write`
//! names): which events a user may see and which actions it may run, and
//! the event masks of `Login`'s `Events:` header and the `Events` action.
//! Owns the names, the bit set and their parsing; not who holds which
//! class (the configuration) nor the filtering itself (`session`).

use std::fmt;

/// A set of classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ClassMask(u32);

/// The classes, in Asterisk's order, with their names.
pub const CLASSES: &[(&str, ClassMask)] = &[
    ("system", ClassMask::SYSTEM),
    ("call", ClassMask::CALL),
    ("log", ClassMask::LOG),
    ("verbose", ClassMask::VERBOSE),
    ("command", ClassMask::COMMAND),
    ("agent", ClassMask::AGENT),
    ("user", ClassMask::USER),
    ("config", ClassMask::CONFIG),
    ("dtmf", ClassMask::DTMF),
    ("reporting", ClassMask::REPORTING),
    ("cdr", ClassMask::CDR),
    ("dialplan", ClassMask::DIALPLAN),
    ("originate", ClassMask::ORIGINATE),
];

/// A class name that is not one of [`CLASSES`] (nor `all`/`none`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown class {name:?} (expected all, none or a list of: system, call, log, verbose, command, agent, user, config, dtmf, reporting, cdr, dialplan, originate)")]
pub struct UnknownClass {
    pub name: String,
}

impl ClassMask {
    pub const NONE: ClassMask = ClassMask(0);
    pub const SYSTEM: ClassMask = ClassMask(1);
    pub const CALL: ClassMask = ClassMask(1 << 1);
    pub const LOG: ClassMask = ClassMask(1 << 2);
    pub const VERBOSE: ClassMask = ClassMask(1 << 3);
    pub const COMMAND: ClassMask = ClassMask(1 << 4);
    pub const AGENT: ClassMask = ClassMask(1 << 5);
    pub const USER: ClassMask = ClassMask(1 << 6);
    pub const CONFIG: ClassMask = ClassMask(1 << 7);
    pub const DTMF: ClassMask = ClassMask(1 << 8);
    pub const REPORTING: ClassMask = ClassMask(1 << 9);
    pub const CDR: ClassMask = ClassMask(1 << 10);
    pub const DIALPLAN: ClassMask = ClassMask(1 << 11);
    pub const ORIGINATE: ClassMask = ClassMask(1 << 12);
    pub const ALL: ClassMask = ClassMask((1 << 13) - 1);

    pub const fn union(self, other: ClassMask) -> ClassMask {
        ClassMask(self.0 | other.0)
    }

    pub const fn intersect(self, other: ClassMask) -> ClassMask {
        ClassMask(self.0 & other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether any class of `other` is in `self`.
    pub fn overlaps(self, other: ClassMask) -> bool {
        !self.intersect(other).is_empty()
    }

    /// A `manager.conf`-style list (`"call,dtmf"`, `"all"`, `"none"`,
    /// empty = none); every name must be known (configuration).
    pub fn parse_list(text: &str) -> Result<ClassMask, UnknownClass> {
        let mut mask = ClassMask::NONE;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            mask = mask.union(match name.to_ascii_lowercase().as_str() {
                "all" => ClassMask::ALL,
                "none" => ClassMask::NONE,
                lower => CLASSES
                    .iter()
                    .find(|(n, _)| *n == lower)
                    .map(|(_, m)| *m)
                    .ok_or_else(|| UnknownClass {
                        name: name.to_owned(),
                    })?,
            });
        }
        Ok(mask)
    }

    /// An event mask as a client sends it (`Events:` of Login, `EventMask:`
    /// of the Events action), read as Asterisk reads it: `on`/`yes`/`true`
    /// is everything, `off`/`no`/`false` nothing, a number the bits, else a
    /// list of class names (unknown names are ignored).
    pub fn parse_event_mask(text: &str) -> ClassMask {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "on" | "yes" | "true" => return ClassMask::ALL,
            "off" | "no" | "false" | "" => return ClassMask::NONE,
            _ => {}
        }
        if let Ok(bits) = t.parse::<u32>() {
            return ClassMask(bits).intersect(ClassMask::ALL);
        }
        t.split(',')
            .filter_map(|n| ClassMask::parse_list(n).ok())
            .fold(ClassMask::NONE, ClassMask::union)
    }
}

/// Asterisk's `Privilege:` form: the class names, then `all`
/// (`call,all`).
impl fmt::Display for ClassMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, m) in CLASSES {
            if self.overlaps(*m) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if !first {
            f.write_str(",")?;
        }
        f.write_str("all")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_case_insensitively_and_unknown_names_are_config_errors() {
        assert_eq!(
            ClassMask::parse_list("Call, dtmf").unwrap(),
            ClassMask::CALL.union(ClassMask::DTMF)
        );
        assert_eq!(ClassMask::parse_list("all").unwrap(), ClassMask::ALL);
        assert_eq!(ClassMask::parse_list("").unwrap(), ClassMask::NONE);
        assert_eq!(
            ClassMask::parse_list("call,bogus").unwrap_err().name,
            "bogus"
        );
    }

    #[test]
    fn event_masks_read_on_off_numbers_and_lists() {
        assert_eq!(ClassMask::parse_event_mask("on"), ClassMask::ALL);
        assert_eq!(ClassMask::parse_event_mask("OFF"), ClassMask::NONE);
        assert_eq!(ClassMask::parse_event_mask("2"), ClassMask::CALL);
        assert_eq!(
            ClassMask::parse_event_mask("call,dtmf,nonsense"),
            ClassMask::CALL.union(ClassMask::DTMF)
        );
    }

    #[test]
    fn privilege_is_written_as_asterisk_writes_it() {
        assert_eq!(ClassMask::CALL.to_string(), "call,all");
        assert_eq!(ClassMask::DTMF.to_string(), "dtmf,all");
    }
}
