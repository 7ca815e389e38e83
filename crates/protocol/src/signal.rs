//! Signal names as they travel on the wire and appear in job files.
//!
//! Numbers are Linux's; supervisord runs on Linux.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! signals {
    ($($variant:ident = $num:expr, $name:expr;)*) => {
        /// A signal a job can be sent, by its Linux number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum Signal { $($variant,)* }

        impl Signal {
            /// Every signal this crate names.
            pub const ALL: &'static [Signal] = &[$(Signal::$variant,)*];

            /// The Linux signal number.
            pub fn number(self) -> i32 {
                match self { $(Signal::$variant => $num,)* }
            }

            /// The full name, `"SIGTERM"`.
            pub fn name(self) -> &'static str {
                match self { $(Signal::$variant => $name,)* }
            }

            /// The signal with this Linux number, if named here.
            pub fn from_number(n: i32) -> Option<Signal> {
                match n { $($num => Some(Signal::$variant),)* _ => None }
            }
        }
    };
}

signals! {
    Hup = 1, "SIGHUP";
    Int = 2, "SIGINT";
    Quit = 3, "SIGQUIT";
    Abrt = 6, "SIGABRT";
    Kill = 9, "SIGKILL";
    Usr1 = 10, "SIGUSR1";
    Segv = 11, "SIGSEGV";
    Usr2 = 12, "SIGUSR2";
    Pipe = 13, "SIGPIPE";
    Alrm = 14, "SIGALRM";
    Term = 15, "SIGTERM";
    Cont = 18, "SIGCONT";
    Stop = 19, "SIGSTOP";
    Tstp = 20, "SIGTSTP";
    Winch = 28, "SIGWINCH";
}

/// A signal name that is not one of [`Signal::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSignal(pub String);

impl fmt::Display for UnknownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown signal {:?} (expected a name such as \"TERM\", \"SIGINT\", \"KILL\", or a number)",
            self.0
        )
    }
}

impl std::error::Error for UnknownSignal {}

impl FromStr for Signal {
    type Err = UnknownSignal;

    /// Accepts `"TERM"`, `"SIGTERM"`, `"term"` and `"15"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        if let Ok(n) = upper.parse::<i32>() {
            return Signal::from_number(n).ok_or_else(|| UnknownSignal(s.to_owned()));
        }
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::ALL
            .iter()
            .copied()
            .find(|sig| &sig.name()[3..] == bare)
            .ok_or_else(|| UnknownSignal(s.to_owned()))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Signal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a signal name such as \"TERM\" or \"SIGKILL\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Signal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Signal, E> {
                i32::try_from(v)
                    .ok()
                    .and_then(Signal::from_number)
                    .ok_or_else(|| E::custom(UnknownSignal(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Signal, E> {
                i32::try_from(v)
                    .ok()
                    .and_then(Signal::from_number)
                    .ok_or_else(|| E::custom(UnknownSignal(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_every_form() {
        for s in ["TERM", "SIGTERM", "term", "15", " sigterm "] {
            assert_eq!(s.parse::<Signal>(), Ok(Signal::Term), "{s}");
        }
        assert_eq!("KILL".parse::<Signal>(), Ok(Signal::Kill));
        assert!("SIGFOO".parse::<Signal>().is_err());
        assert!("99".parse::<Signal>().is_err());
        assert!("".parse::<Signal>().is_err());
    }

    #[test]
    fn round_trip() {
        for sig in Signal::ALL {
            let json = serde_json::to_string(sig).expect("serialize");
            assert_eq!(serde_json::from_str::<Signal>(&json).expect("parse"), *sig);
            assert_eq!(Signal::from_number(sig.number()), Some(*sig));
        }
    }
}
