//! Deserializers for the API's collection shapes, without buffering: one-or-many (an object is one
//! entry, an array several, `""`/`{}`/`null` none) and relation containers such as
//! `"Emails": {"ContactEmail": …}` or `"Emails": ""`. A shape that fits none of these is kept as a
//! description in `bad`, so the caller can report it with the field's path.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// An entry type of a relation container, and its key inside the container.
pub(crate) trait Item {
    /// `ContactEmail`, `ContactPhone`, `ContactAddress`.
    const KEY: &'static str;
}

/// Entries read from a one-or-many value or a container.
#[derive(Debug)]
pub(crate) struct Entries<T> {
    /// The entries, in order.
    pub items: Vec<T>,
    /// A description of an unexpected shape.
    pub bad: Option<String>,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries {
            items: Vec::new(),
            bad: None,
        }
    }
}

impl<T> Entries<T> {
    fn bad(what: impl Into<String>) -> Self {
        Entries {
            items: Vec::new(),
            bad: Some(what.into()),
        }
    }
}

/// The scalar cases shared by both visitors: `""`, `null` and unit mean "none"; any other scalar is
/// an unexpected shape, described for the error message.
macro_rules! scalar_visits {
    () => {
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(if v.is_empty() {
                Entries::default()
            } else {
                Entries::bad(format!("a string {v:?}"))
            })
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Entries::default())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Entries::default())
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Entries::bad(v.to_string()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Entries::bad(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Entries::bad(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Entries::bad(v.to_string()))
        }
    };
}

/// One-or-many: `{…}` → one, `[{…}, …]` → several, `""`/`null`/`{}`/`[]` → none.
pub(crate) struct OneOrMany<T>(pub Entries<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisitor(PhantomData))
            .map(OneOrMany)
    }
}

struct OneOrManyVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
    type Value = Entries<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object, an array of objects or \"\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        if map.size_hint() == Some(0) {
            return Ok(Entries::default());
        }
        let one = T::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Entries {
            items: vec![one],
            bad: None,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Entries { items, bad: None })
    }
    scalar_visits!();
}

/// A relation container: `{"<T::KEY>": one-or-many}`, or `""`/`{}`/`null` for none.
pub(crate) struct Container<T>(pub Entries<T>);

impl<'de, T: Deserialize<'de> + Item> Deserialize<'de> for Container<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ContainerVisitor(PhantomData))
            .map(Container)
    }
}

struct ContainerVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Item> Visitor<'de> for ContainerVisitor<T> {
    type Value = Entries<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{\"{}\": …}} or \"\"", T::KEY)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Entries::default();
        while let Some(is_item) = map.next_key_seed(KeyIs(T::KEY))? {
            if is_item {
                entries = map.next_value::<OneOrMany<T>>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(entries)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut any = false;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            any = true;
        }
        Ok(if any {
            Entries::bad("an array")
        } else {
            Entries::default()
        })
    }
    scalar_visits!();
}

/// Reads a map key and says whether it equals the expected one, without allocating.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct E {
        address: String,
    }
    impl Item for E {
        const KEY: &'static str = "ContactEmail";
    }

    fn container(json: &str) -> Entries<E> {
        serde_json::from_str::<Container<E>>(json).unwrap().0
    }

    #[test]
    fn containers_in_every_shape() {
        assert!(container(r#""""#).items.is_empty());
        assert!(container("null").items.is_empty());
        assert!(container("{}").items.is_empty());
        assert!(container(r#"{"ContactEmail": []}"#).items.is_empty());
        assert!(container(r#"{"ContactEmail": ""}"#).items.is_empty());
        let one = container(r#"{"ContactEmail": {"address": "a@b.c"}}"#);
        assert_eq!(
            one.items,
            [E {
                address: "a@b.c".into()
            }]
        );
        let two =
            container(r#"{"Other": 1, "ContactEmail": [{"address": "a"}, {"address": "b"}]}"#);
        assert_eq!(two.items.len(), 2);
        assert!(container(r#""nope""#).bad.is_some());
        assert!(container("5").bad.is_some());
        assert!(container(r#"{"ContactEmail": 5}"#).bad.is_some());
    }
}
