//! The two policies of a trigger, as the manifest spells them.

use std::fmt;
use std::str::FromStr;

/// What happens to scheduled times missed while no server ran (seen later than
/// [`super::ON_TIME_GRACE`] but within the trigger's catch-up window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Catchup {
    /// None of them runs; each is counted as skipped.
    Skip,
    /// The newest runs once for the whole missed stretch; the others are counted as skipped.
    #[default]
    Latest,
    /// Each runs, oldest first.
    All,
}

/// What a fire does while an earlier execution of the same trigger is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// The fire is skipped and counted.
    #[default]
    Skip,
    /// The fire starts another execution alongside.
    Allow,
    /// The fire waits until the running ones finish; a later fire replaces a waiting one
    /// (which is counted as skipped).
    BufferOne,
    /// The unfinished executions are cancelled and the fire starts a new one.
    CancelOther,
}

macro_rules! words {
    ($t:ty { $($v:ident => $w:literal),+ $(,)? }) => {
        impl $t {
            /// Every word, in the order docs list them.
            pub const WORDS: &'static [&'static str] = &[$($w),+];

            /// The word the manifest and the API use.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $w),+ }
            }
        }

        impl FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($w => Ok(Self::$v),)+
                    other => Err(format!("'{other}' is not one of {}", Self::WORDS.join(", "))),
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(Catchup { Skip => "skip", Latest => "latest", All => "all" });
words!(Overlap { Skip => "skip", Allow => "allow", BufferOne => "buffer_one", CancelOther => "cancel_other" });

impl Overlap {
    /// Whether a fire under this policy weighs the trigger's unfinished executions: every
    /// policy does but `allow`, which starts alongside whatever runs. A store need not look
    /// them up for the others.
    pub fn weighs_unfinished(self) -> bool {
        self != Self::Allow
    }

    /// The words of the policies that weigh the unfinished executions.
    pub fn words_weighing_unfinished() -> Vec<&'static str> {
        [Self::Skip, Self::Allow, Self::BufferOne, Self::CancelOther]
            .into_iter()
            .filter(|o| o.weighs_unfinished())
            .map(Self::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_and_others_are_refused_naming_the_choices() {
        for w in Catchup::WORDS {
            assert_eq!(w.parse::<Catchup>().unwrap().as_str(), *w);
        }
        for w in Overlap::WORDS {
            assert_eq!(w.parse::<Overlap>().unwrap().as_str(), *w);
        }
        assert_eq!(Overlap::words_weighing_unfinished(), ["skip", "buffer_one", "cancel_other"]);
        let e = "sometimes".parse::<Overlap>().unwrap_err();
        assert!(e.contains("buffer_one") && e.contains("cancel_other"), "{e}");
        assert_eq!(Catchup::default(), Catchup::Latest);
        assert_eq!(Overlap::default(), Overlap::Skip);
    }
}
