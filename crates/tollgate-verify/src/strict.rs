//! JSON with containers/image's paranoia: duplicate keys anywhere are an error.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their keys in order and never hold a key twice.
#[derive(Debug, Clone, PartialEq)]
pub enum Strict {
    /// null
    Null,
    /// true/false
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Strict>),
    /// An object.
    Object(Vec<(String, Strict)>),
}

impl Strict {
    /// Parses `bytes`, refusing duplicate keys.
    pub fn parse(bytes: &[u8]) -> Result<Strict, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The fields of an object that must have exactly `names`, in any order.
    pub fn exact_fields<'a>(&'a self, what: &str, names: &[&str]) -> Result<Vec<&'a Strict>, String> {
        let Strict::Object(fields) = self else { return Err(format!("{what} is not a JSON object")) };
        if let Some((k, _)) = fields.iter().find(|(k, _)| !names.contains(&k.as_str())) {
            return Err(format!("{what} has an unexpected field {k:?}"));
        }
        names
            .iter()
            .map(|n| {
                fields.iter().find(|(k, _)| k == n).map(|(_, v)| v).ok_or_else(|| format!("{what} has no field {n:?}"))
            })
            .collect()
    }

    /// The string value, or an error naming `what`.
    pub fn str(&self, what: &str) -> Result<&str, String> {
        match self {
            Strict::String(s) => Ok(s),
            _ => Err(format!("{what} is not a string")),
        }
    }

    /// The integer value, or an error naming `what`.
    pub fn i64(&self, what: &str) -> Result<i64, String> {
        match self {
            Strict::Number(n) => n.as_i64().ok_or_else(|| format!("{what} is not an integer")),
            _ => Err(format!("{what} is not a number")),
        }
    }
}

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Strict, E> {
                Ok(Strict::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Strict, E> {
                Ok(Strict::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Strict, E> {
                Ok(Strict::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Strict, E> {
                serde_json::Number::from_f64(n).map(Strict::Number).ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Strict, E> {
                Ok(Strict::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Strict, E> {
                Ok(Strict::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Strict::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
                // A set, not a scan of `out`: an object of n keys must cost O(n),
                // since unsigned annotations reach this parser before any signature check.
                let mut seen = HashSet::new();
                let mut out: Vec<(String, Strict)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, map.next_value()?));
                }
                Ok(Strict::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(Strict::parse(br#"{"a":1,"a":2}"#), Err("duplicate key \"a\" at line 1 column 10".into()));
        assert!(Strict::parse(br#"{"x":[{"b":1,"c":{"d":1,"d":1}}]}"#).is_err());
        assert!(Strict::parse(br#"{"a":{"a":1},"b":{"a":1}}"#).is_ok(), "the same key in sibling objects is fine");
    }

    /// Regression: duplicate detection was a scan per key, O(n²); an unsigned
    /// 40,000-key annotation cost seconds. 200,000 keys must parse in linear time
    /// (with the scan this test does not finish).
    #[test]
    fn a_wide_object_parses_in_linear_time() {
        let n = 200_000;
        let mut json = String::from("{");
        for i in 0..n {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("\"k{i}\":0"));
        }
        json.push('}');
        match Strict::parse(json.as_bytes()) {
            Ok(Strict::Object(fields)) => assert_eq!(fields.len(), n),
            other => panic!("{other:?}"),
        }
    }
}
