//! The command as the log carries it: shared and encoded once.
//!
//! The leader sends each new entry to every other node, one replication
//! stream each, and openraft hands every stream its own copy of the
//! entries. With a hundred learners, copying the commands (pods and their
//! specs), encoding each copy as JSON and dropping it again took most of the
//! leader's CPU; on the learners, decoding every pod of every entry, again
//! for each entry sent twice, took most of theirs. A [`SharedCommand`] is a
//! pointer: copies are free. Its JSON is made once and reused by every
//! stream and by the log table, and one that arrives as JSON is kept as
//! such (only checked to be well-formed) until it is applied. It encodes
//! exactly as the [`Command`] inside it, so logs and peers of earlier
//! versions read it unchanged.
//!
//! Raft's log and wire are JSON (`serde_json`) only: the cached encoding is a
//! `RawValue`, which other serde formats would not take as is.

use crate::state::Command;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::sync::{Arc, OnceLock};

/// A [`Command`] in a Raft entry.
#[derive(Clone)]
pub struct SharedCommand(Arc<Inner>);

/// At least one of the two is set.
struct Inner {
    cmd: OnceLock<Command>,
    json: OnceLock<Box<RawValue>>,
}

impl SharedCommand {
    /// Wraps `cmd`.
    pub fn new(cmd: Command) -> SharedCommand {
        SharedCommand(Arc::new(Inner {
            cmd: OnceLock::from(cmd),
            json: OnceLock::new(),
        }))
    }

    /// The command, decoded on first use if it came as JSON.
    pub fn command(&self) -> Result<&Command, serde_json::Error> {
        if let Some(c) = self.0.cmd.get() {
            return Ok(c);
        }
        let json = self.0.json.get().expect("a command or its JSON");
        let cmd = serde_json::from_str(json.get())?;
        Ok(self.0.cmd.get_or_init(|| cmd))
    }

    fn json(&self) -> &RawValue {
        self.0.json.get_or_init(|| {
            let cmd = self.0.cmd.get().expect("a command or its JSON");
            serde_json::value::to_raw_value(cmd).expect("commands encode as JSON")
        })
    }
}

impl std::fmt::Debug for SharedCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.cmd.get() {
            Some(c) => c.fmt(f),
            None => write!(f, "{}", self.json().get()),
        }
    }
}

impl Serialize for SharedCommand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedCommand, D::Error> {
        let json = Box::<RawValue>::deserialize(d)?;
        Ok(SharedCommand(Arc::new(Inner {
            cmd: OnceLock::new(),
            json: OnceLock::from(json),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeFacts;

    fn facts() -> Command {
        Command::NodeFacts(NodeFacts {
            name: "n1".into(),
            addr: "10.0.0.1:4740".parse().unwrap(),
            cpus: 2,
            memory_bytes: 1 << 30,
            version: "0.1.0".into(),
            arch: "amd64".into(),
        })
    }

    #[test]
    fn encodes_as_the_command_and_decodes_back() {
        let plain = serde_json::to_string(&facts()).unwrap();
        let shared = SharedCommand::new(facts());
        assert_eq!(serde_json::to_string(&shared).unwrap(), plain);
        // Twice: the second time from the cached encoding.
        assert_eq!(serde_json::to_string(&shared).unwrap(), plain);
        // Inside an openraft entry, as the log table and the wire hold it.
        let entry = openraft::Entry::<super::super::TypeConfig> {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 7),
            payload: openraft::EntryPayload::Normal(shared.clone()),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains(&plain), "{json}");
        let back: openraft::Entry<super::super::TypeConfig> = serde_json::from_str(&json).unwrap();
        match back.payload {
            openraft::EntryPayload::Normal(c) => {
                // Kept as JSON: encoded again as it came, then decoded.
                assert_eq!(serde_json::to_string(&c).unwrap(), plain);
                assert_eq!(c.command().unwrap(), &facts());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_command_of_unknown_shape_fails_when_applied_not_when_carried() {
        let odd: SharedCommand = serde_json::from_str(r#"{"noSuchCommand":{}}"#).unwrap();
        assert!(odd.command().is_err());
        assert!(serde_json::from_str::<SharedCommand>("{not json").is_err());
    }

    #[test]
    fn copies_share_one_command() {
        let a = SharedCommand::new(facts());
        let b = a.clone();
        assert!(std::ptr::eq(a.command().unwrap(), b.command().unwrap()));
    }
}
