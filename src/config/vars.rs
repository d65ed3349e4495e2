//! The `DISTINCTLY_*` variables: reading a settings struct from them (every
//! error naming its variable), and finding the ones no setting reads.

use super::ConfigError;

/// The names of the fields of the settings struct `T`, as serde sees them
/// (so the list of known variables cannot drift from the structs).
pub fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Done;
    impl std::fmt::Display for Done {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Done {}
    impl de::Error for Done {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Done
        }
    }
    impl<'de> de::Deserializer<'de> for &mut Probe {
        type Error = Done;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            self.0 = Some(fields);
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// The `DISTINCTLY_*` variables the fields of the settings struct `T`
/// are read from.
pub fn variable_names<T: serde::de::DeserializeOwned>() -> Vec<String> {
    field_names::<T>()
        .iter()
        .map(|f| format!("DISTINCTLY_{}", f.to_uppercase()))
        .collect()
}

/// The `DISTINCTLY_*` variables among `vars` that no setting reads (a typo
/// such as `DISTINCTLY_COUNTR`), each with the closest of `known` when one
/// is close. `DISTINCTLY_RDKAFKA_*` passes through to librdkafka.
pub fn unknown_variables(
    vars: impl IntoIterator<Item = (String, String)>,
    known: &[String],
) -> Vec<(String, Option<String>)> {
    let mut unknown: Vec<(String, Option<String>)> = vars
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("DISTINCTLY_") && !k.starts_with("DISTINCTLY_RDKAFKA_"))
        .filter(|k| !known.contains(k))
        .map(|k| {
            let closest = known
                .iter()
                .map(|n| (edit_distance(&k, n), n))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, n)| n.clone());
            (k, closest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Levenshtein distance (short ASCII names only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Reads the settings struct `T` from the `prefix*` variables among `vars`
/// (field `foo` from `{prefix}FOO`), every error naming its variable.
pub(crate) fn from_prefixed<T: serde::de::DeserializeOwned>(
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    envy::prefixed(prefix)
        .from_iter(vars)
        .map_err(|e| env_error(prefix, e))
}

/// Turns an envy error into one line naming the variable: envy names the
/// field (`window_seconds`) or the variable without its prefix.
fn env_error(prefix: &str, e: envy::Error) -> ConfigError {
    ConfigError::Env(match e {
        envy::Error::MissingValue(field) => {
            format!("{prefix}{} is required", field.to_uppercase())
        }
        // envy reports "... provided by WINDOW_SECONDS" (prefix stripped).
        envy::Error::Custom(msg) => match msg.rsplit_once(" provided by ") {
            Some((what, var)) => format!("{prefix}{var}: {what}"),
            None => msg,
        },
    })
}

/// `(name, value)` pairs as the environment gives them (tests).
#[cfg(test)]
pub(crate) fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
