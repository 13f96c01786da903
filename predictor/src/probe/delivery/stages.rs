//! A release's stages by name, in the order it wrote them (a JSON object in that order in `summary.json`).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Stage name → time, in the order first written; a name written again keeps its place and takes the
/// later time (as a Python dict does).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stages(Vec<(String, f64)>);

impl Stages {
    pub fn set(&mut self, name: &str, at: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(stage) => stage.1 = at,
            None => self.0.push((name.to_string(), at)),
        }
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, at)| *at)
    }

    /// The same stages with each time changed by `f`.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        Self(self.0.iter().map(|(n, at)| (n.clone(), f(*at))).collect())
    }
}

impl Serialize for Stages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, at) in &self.0 {
            map.serialize_entry(name, at)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Stages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Stages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of stage name to seconds")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stages, A::Error> {
                let mut stages = Stages::default();
                while let Some((name, at)) = map.next_entry::<String, f64>()? {
                    stages.set(&name, at);
                }
                Ok(stages)
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}
