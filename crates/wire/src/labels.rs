//! The one way to declare a small, fixed label set (reasons, kinds, directions) that becomes a
//! metric label or an output flag: every crate uses [`labeled_enum!`](crate::labeled_enum)
//! rather than hand-writing `as_str` and `ALL`, so a new variant cannot be forgotten in one of
//! them.

/// Declares a fieldless enum with a stable snake_case label per variant, an `ALL` list in
/// declaration order, `COUNT` and `index()`, so counters can live in plain arrays.
///
/// ```
/// vxtap_wire::labeled_enum! {
///     /// Why it happened.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Reason {
///         /// The first reason.
///         First => "first",
///         /// The other one.
///         Other => "other",
///     }
/// }
/// assert_eq!(Reason::ALL.map(Reason::as_str), ["first", "other"]);
/// assert_eq!((Reason::COUNT, Reason::Other.index()), (2, 1));
/// assert_eq!((Reason::from_label("other"), Reason::from_label("Other")), (Some(Reason::Other), None));
/// ```
#[macro_export]
macro_rules! labeled_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident {
            $( $(#[$vm:meta])* $var:ident => $label:literal, )*
        }
    ) => {
        $(#[$m])*
        pub enum $name {
            $( $(#[$vm])* $var, )*
        }

        impl $name {
            /// Number of variants: the length of a counter array indexed by `index()`.
            pub const COUNT: usize = [$(stringify!($var),)*].len();
            /// Every variant, in declaration order (the order of `index()`).
            pub const ALL: [$name; Self::COUNT] = [$($name::$var,)*];

            /// Stable snake_case label, safe to use as a metric label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $label,)*
                }
            }

            /// Position in `ALL`, for indexing counter arrays.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The variant whose label is `label` (reading records and configs back).
            pub fn from_label(label: &str) -> Option<Self> {
                match label {
                    $($label => Some($name::$var),)*
                    _ => None,
                }
            }
        }
    };
}
