//! The identity tasks run as outside their sandbox: never root. A server running as root
//! switches each attempt to the task user (`nobody` unless configured); any other server
//! runs its tasks as itself, the sandbox hiding everything of its own.

use nix::unistd::{Gid, Uid, User, getegid, geteuid};

/// The user tasks run as, outside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIdentity {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether starting a task switches to this user (the server runs as root).
    pub switch: bool,
}

/// The user tasks run as when the server runs as root and none is configured.
pub const DEFAULT_TASK_USER: &str = "nobody";

impl TaskIdentity {
    /// The identity for `configured` (the `--task-user` value, if any).
    ///
    /// # Errors
    /// A sentence saying why: an unknown user, a root task user, or another user asked for by
    /// a server that is not root and so cannot switch to it.
    pub fn resolve(configured: Option<&str>) -> Result<Self, String> {
        let me = geteuid();
        if me.is_root() {
            let name = configured.unwrap_or(DEFAULT_TASK_USER);
            let user = User::from_name(name)
                .map_err(|e| format!("cannot look up the task user '{name}': {e}"))?
                .ok_or_else(|| format!("the task user '{name}' does not exist (--task-user)"))?;
            if user.uid.is_root() || user.gid.as_raw() == 0 {
                return Err(format!("the task user '{name}' is root or in group 0: tasks never run as root"));
            }
            return Ok(Self { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw(), switch: true });
        }
        let own = User::from_uid(me).ok().flatten();
        let own_name = own.as_ref().map_or_else(|| me.to_string(), |u| u.name.clone());
        if let Some(name) = configured
            && name != own_name
        {
            return Err(format!(
                "--task-user {name}: only a server running as root can run tasks as another user; this one runs as \
                 '{own_name}', so its tasks run as '{own_name}' inside their sandbox"
            ));
        }
        Ok(Self { name: own_name, uid: me.as_raw(), gid: getegid().as_raw(), switch: false })
    }

    pub fn uid(&self) -> Uid {
        Uid::from_raw(self.uid)
    }

    pub fn gid(&self) -> Gid {
        Gid::from_raw(self.gid)
    }
}
