//! A macro for the small, fixed label sets that become metric labels.

/// Declares a fieldless enum with a stable snake_case label per variant, an `ALL` list in
/// declaration order, `COUNT` and `index()`, so counters can live in plain arrays.
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
            /// Every variant, in declaration order (the order of `index()`).
            pub const ALL: &'static [$name] = &[$($name::$var,)*];
            /// Number of variants: the length of a counter array indexed by `index()`.
            pub const COUNT: usize = Self::ALL.len();

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
        }
    };
}

pub(crate) use labeled_enum;
