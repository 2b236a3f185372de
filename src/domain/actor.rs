use serde::{Deserialize, Serialize};

use super::{RoleId, UserId};

/// Who did something in chat. Authorization uses `roles` (IDs), never names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: UserId,
    pub name: String,
    pub roles: Vec<RoleId>,
}

impl Actor {
    /// As recorded in a job: the stable ID and the name shown at the time.
    pub fn person(&self) -> Person {
        Person {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// The audit log's actor: the name, and the ID too when it says something more
    /// (Discord's snowflakes; in the terminal both are the same).
    pub fn audit_name(&self) -> String {
        if self.id == self.name.as_str() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

/// A chat user as recorded in a job: stable ID plus the name shown at the time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: UserId,
    pub name: String,
}
