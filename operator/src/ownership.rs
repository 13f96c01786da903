//! Which objects are a Predictor's own. The operator writes, scales and deletes only children whose
//! controlling ownerReference carries the Predictor's uid; an object that merely has the name a
//! child would have (made by hand, by another controller, or by another Predictor's author) is never
//! adopted: the Predictor reports a [`Conflict`] instead, and it clears by itself once that object is
//! removed or renamed. Kubernetes' own controllers keep the same rule, and the garbage collector
//! relies on it (an adopted object would be deleted with the Predictor).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::Predictor;

/// Whether `predictor` is `object`'s controlling owner.
pub fn owned_by<K: Resource>(object: &K, predictor: &Predictor) -> bool {
    let Some(uid) = predictor.uid() else {
        return false;
    };
    controller_of(object).is_some_and(|o| o.uid == uid)
}

/// `object`'s controlling ownerReference, if it has one.
fn controller_of<K: Resource>(object: &K) -> Option<&OwnerReference> {
    object
        .meta()
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|o| o.controller == Some(true))
}

/// An object under a name the Predictor needs for a child, which the Predictor does not control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub kind: String,
    pub name: String,
    /// Its controller, as `Kind/name`, if it has one.
    pub owner: Option<String>,
}

impl Conflict {
    /// The conflict `object` is for `predictor`, if it is not the Predictor's own.
    pub fn of<K: Resource<DynamicType = ()>>(object: &K, predictor: &Predictor) -> Option<Self> {
        (!owned_by(object, predictor)).then(|| Self {
            kind: K::kind(&()).into_owned(),
            name: object.name_any(),
            owner: controller_of(object).map(|o| format!("{}/{}", o.kind, o.name)),
        })
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = match &self.owner {
            Some(owner) => format!("controlled by {owner}"),
            None => "with no controller".into(),
        };
        write!(f, "{} {} exists, {owner}", self.kind, self.name)
    }
}

/// What the Degraded condition says of `conflicts` (none: `None`).
pub fn describe(conflicts: &[Conflict]) -> Option<String> {
    if conflicts.is_empty() {
        return None;
    }
    let list = conflicts
        .iter()
        .map(Conflict::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Some(format!(
        "{list}: the operator changes only objects this Predictor controls and left {} alone; \
         remove or rename {}, or rename the Predictor",
        if conflicts.len() == 1 { "it" } else { "them" },
        if conflicts.len() == 1 { "it" } else { "them" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::predictor;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::ObjectMeta;

    fn service(owners: Vec<OwnerReference>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("victim".into()),
                namespace: Some("team-a".into()),
                owner_references: Some(owners),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    fn reference(kind: &str, name: &str, uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(controller),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn only_a_controlling_reference_with_the_predictors_uid_makes_an_object_its_own() {
        let p = predictor("american", "team-a");
        let uid = p.uid().expect("the fixture has a uid");
        let name = p.name_any();
        assert!(owned_by(
            &service(vec![reference("Predictor", &name, &uid, true)]),
            &p
        ));
        // Same name, other uid (a deleted Predictor's leftover, or a forged reference).
        assert!(!owned_by(
            &service(vec![reference("Predictor", &name, "other-uid", true)]),
            &p
        ));
        // The right uid but not as controller.
        assert!(!owned_by(
            &service(vec![reference("Predictor", &name, &uid, false)]),
            &p
        ));
        assert!(!owned_by(&service(vec![]), &p));
        let mut unsaved = p.clone();
        unsaved.metadata.uid = None;
        assert!(!owned_by(&service(vec![]), &unsaved));
    }

    #[test]
    fn a_conflict_names_the_kind_the_object_and_its_controller() {
        let p = predictor("american", "team-a");
        let hand_made = Conflict::of(&service(vec![]), &p).expect("not the Predictor's");
        assert_eq!(
            hand_made,
            Conflict {
                kind: "Service".into(),
                name: "victim".into(),
                owner: None
            }
        );
        let other = Conflict::of(
            &service(vec![reference("Deployment", "web", "u-1", true)]),
            &p,
        )
        .expect("not the Predictor's");
        assert_eq!(
            describe(&[hand_made, other]).as_deref(),
            Some(
                "Service victim exists, with no controller; Service victim exists, controlled by \
                 Deployment/web: the operator changes only objects this Predictor controls and \
                 left them alone; remove or rename them, or rename the Predictor"
            )
        );
        let own = Deployment {
            metadata: crate::resources::build_deployment(&p, "registry.local/p:1")
                .expect("builds")
                .metadata,
            ..Deployment::default()
        };
        assert_eq!(Conflict::of(&own, &p), None);
        assert_eq!(describe(&[]), None);
    }
}
