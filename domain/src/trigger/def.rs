//! `[[workflow.trigger]]`: the shape people write, checked into a [`TriggerDef`] with every
//! error naming its field.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Catchup, CronExpr, Overlap};
use crate::package::{ManifestError, WorkflowName};

/// The default and the longest catch-up window.
pub const DEFAULT_CATCHUP_WINDOW: Duration = Duration::from_secs(3600);
pub const MAX_CATCHUP_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most bytes a trigger's context may take as JSON.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// One checked `[[workflow.trigger]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDef {
    pub name: WorkflowName,
    pub cron: CronExpr,
    pub timezone: chrono_tz::Tz,
    pub catchup: Catchup,
    pub catchup_window: Duration,
    pub overlap: Overlap,
    /// Merged into each fired execution's context (the fire's own event wins on a clash).
    pub context: Map<String, Value>,
}

/// The shape on disk.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    name: String,
    cron: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    catchup: Option<String>,
    #[serde(default)]
    catchup_window: Option<String>,
    #[serde(default)]
    overlap: Option<String>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

impl RawTrigger {
    /// Checks one trigger found at `at` (`workflow[0].trigger[1]`).
    pub(crate) fn check(self, at: &str) -> Result<TriggerDef, ManifestError> {
        let field = |name: &str| format!("{at}.{name}");
        let name = WorkflowName::parse(&self.name)
            .map_err(|e| ManifestError::new(field("name"), format!("'{}' {e}", self.name)))?;
        let cron = CronExpr::parse(&self.cron)
            .map_err(|e| ManifestError::new(field("cron"), format!("'{}' is not a cron expression: {e}", self.cron)))?;
        let timezone = match self.timezone.as_deref() {
            None => chrono_tz::UTC,
            Some(tz) => tz.parse().map_err(|_| {
                ManifestError::new(field("timezone"), format!("'{tz}' is not an IANA time zone like \"Europe/Paris\""))
            })?,
        };
        let catchup = match self.catchup.as_deref() {
            None => Catchup::default(),
            Some(w) => w.parse().map_err(|e| ManifestError::new(field("catchup"), e))?,
        };
        let overlap = match self.overlap.as_deref() {
            None => Overlap::default(),
            Some(w) => w.parse().map_err(|e| ManifestError::new(field("overlap"), e))?,
        };
        let catchup_window = match self.catchup_window.as_deref() {
            None => DEFAULT_CATCHUP_WINDOW,
            Some(v) => {
                let d = humantime::parse_duration(v).map_err(|e| {
                    ManifestError::new(
                        field("catchup_window"),
                        format!("'{v}' is not a duration like \"30s\", \"10m\" or \"1h\": {e}"),
                    )
                })?;
                if d > MAX_CATCHUP_WINDOW {
                    return Err(ManifestError::new(field("catchup_window"), "must be at most 7d"));
                }
                d
            }
        };
        let context = self.context.unwrap_or_default();
        if serde_json::to_vec(&context).map_or(usize::MAX, |v| v.len()) > MAX_CONTEXT_BYTES {
            return Err(ManifestError::new(
                field("context"),
                format!("must be at most {MAX_CONTEXT_BYTES} bytes as JSON"),
            ));
        }
        Ok(TriggerDef { name, cron, timezone, catchup, catchup_window, overlap, context })
    }
}

impl TriggerDef {
    /// A definition as a store keeps it, read back.
    ///
    /// # Errors
    /// What no longer parses, as text.
    pub fn from_stored(
        name: &str,
        cron: &str,
        timezone: &str,
        catchup: &str,
        catchup_window_ms: u64,
        overlap: &str,
        context: Map<String, Value>,
    ) -> Result<Self, String> {
        Ok(Self {
            name: WorkflowName::parse(name).map_err(|e| format!("trigger name '{name}' {e}"))?,
            cron: CronExpr::parse(cron)?,
            timezone: timezone.parse().map_err(|_| format!("unknown time zone '{timezone}'"))?,
            catchup: catchup.parse()?,
            catchup_window: Duration::from_millis(catchup_window_ms),
            overlap: overlap.parse()?,
            context,
        })
    }

    /// The catch-up window in milliseconds, as stores keep it.
    pub fn catchup_window_ms(&self) -> u64 {
        u64::try_from(self.catchup_window.as_millis()).unwrap_or(u64::MAX)
    }
}
