//! Principals: who acts. People are named in the campaign's governance (with a
//! role) or are local operating-system users; proposers are agents; worker slots
//! are workers.

use cedar_policy::{EntityId, EntityTypeName, EntityUid};

/// Who performs an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person listed in `[governance] approvers`, authenticated by their key.
    Human {
        /// Their name.
        name: String,
        /// Their role (`approver`, `researcher`, `auditor`, `admin`).
        role: String,
    },
    /// An operating-system user acting without a key: may ask, never decides.
    Local {
        /// The user name.
        user: String,
    },
    /// An automated proposer.
    Agent {
        /// Its name (`tpe`, `evolution`, …).
        name: String,
    },
    /// A worker slot of a run.
    Worker {
        /// The run.
        run: u64,
        /// The slot.
        slot: u32,
    },
}

impl Principal {
    /// The id recorded in the ledger: `alice`, `local:ann`, `agent:tpe`,
    /// `worker:3/0`.
    pub fn id(&self) -> String {
        match self {
            Principal::Human { name, .. } => name.clone(),
            Principal::Local { user } => format!("local:{user}"),
            Principal::Agent { name } => format!("agent:{name}"),
            Principal::Worker { run, slot } => format!("worker:{run}/{slot}"),
        }
    }

    /// True for agents and workers.
    pub fn is_machine(&self) -> bool {
        matches!(self, Principal::Agent { .. } | Principal::Worker { .. })
    }

    /// The Cedar entity this principal is.
    pub(crate) fn uid(&self) -> EntityUid {
        let (kind, id) = match self {
            Principal::Human { .. } | Principal::Local { .. } => ("Human", self.id()),
            Principal::Agent { name } => ("Agent", name.clone()),
            Principal::Worker { run, slot } => ("Worker", format!("{run}/{slot}")),
        };
        uid(kind, &id)
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

/// `Firebreak::<kind>::"<id>"`.
pub(crate) fn uid(kind: &str, id: &str) -> EntityUid {
    let name: EntityTypeName = format!("Firebreak::{kind}")
        .parse()
        .unwrap_or_else(|_| unreachable!("entity type names are constants"));
    EntityUid::from_type_name_and_id(name, EntityId::new(id))
}
