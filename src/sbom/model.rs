//! The subset of CycloneDX 1.5 JSON that we write (and that Inspector's own
//! generator writes), in the field order inspector-sbomgen uses.
//!
//! Own structs rather than the `cyclonedx-bom` crate: that crate pulls in
//! regex, spdx, xml-rs, fluent-uri and more (16 direct dependencies) for a
//! model that validates and converts between spec versions, while we need
//! exactly Inspector's conventions (e.g. `metadata.tools.components`, repeated
//! property names, no `dependencies`) and a small, auditable dependency
//! surface. Deserialize is derived too, so tests can read Amazon's SBOMs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    pub bom_format: String,
    pub spec_version: String,
    pub serial_number: String,
    pub version: u32,
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub timestamp: String,
    pub tools: Tools,
    pub component: Component,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tools {
    #[serde(default)]
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    #[serde(rename = "bom-ref", default, skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    #[serde(rename = "type")]
    pub kind: ComponentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Maven's groupId. inspector-sbomgen leaves it out; CycloneDX readers
    /// expect it, and Inspector matches on the purl either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

impl Component {
    pub fn new(kind: ComponentType, name: impl Into<String>) -> Self {
        Component {
            bom_ref: None,
            kind,
            author: None,
            group: None,
            name: name.into(),
            version: None,
            purl: None,
            hashes: Vec::new(),
            properties: Vec::new(),
            components: Vec::new(),
        }
    }

    pub fn with_property(mut self, name: &str, value: impl Into<String>) -> Self {
        self.properties.push(Property {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }

    /// Values of every property called `name` (CycloneDX allows repeats,
    /// and we use them for per-layer attribution).
    pub fn property_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.properties
            .iter()
            .filter(move |p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// This component and everything nested in it, depth first.
    pub fn walk(&self) -> Vec<&Component> {
        let mut out = vec![self];
        for c in &self.components {
            out.extend(c.walk());
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentType {
    Application,
    Framework,
    Library,
    Container,
    Platform,
    OperatingSystem,
    Device,
    DeviceDriver,
    Firmware,
    File,
    MachineLearningModel,
    Data,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hash {
    pub alg: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub value: String,
}
