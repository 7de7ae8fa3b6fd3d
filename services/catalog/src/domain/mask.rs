//! `update_mask` merging for any API message, through its descriptor: each path (`bucket`,
//! `s3_store.bucket`, `backup.retention`) copies that field from the request onto the stored
//! message, or clears it when the request leaves it unset. Which top-level fields may change
//! is the caller's rule.

use cairn_api::json::pool;
use cairn_runtime::status::Violations;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor};

/// Merges the fields named by `paths` from `patch` into `base`. `updatable` decides which
/// top-level field names may appear; the returned violations name `update_mask`.
pub fn apply<M>(base: &M, patch: &M, paths: &[String], updatable: &[&str]) -> Result<M, Violations>
where
    M: prost::Message + prost::Name + Default,
{
    let mut v = Violations::default();
    if paths.is_empty() {
        v.add("update_mask", "is required: name the fields to change (e.g. display_name)");
        return Err(v);
    }
    let Some(desc) = pool().get_message_by_name(&M::full_name()) else {
        v.add("update_mask", "cannot be applied to this message");
        return Err(v);
    };
    let decode = |m: &M| DynamicMessage::decode(desc.clone(), m.encode_to_vec().as_slice());
    let (Ok(mut base_dyn), Ok(patch_dyn)) = (decode(base), decode(patch)) else {
        v.add("update_mask", "cannot be applied to this message");
        return Err(v);
    };
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        if !updatable.contains(&segments[0]) {
            let why = if desc.get_field_by_name(segments[0]).is_some() {
                format!("{path:?} cannot be updated (output-only or immutable)")
            } else {
                format!("{path:?} is not a field of {}", desc.name())
            };
            v.add("update_mask", why);
            continue;
        }
        if let Err(e) = copy_path(&desc, &mut base_dyn, &patch_dyn, &segments) {
            v.add("update_mask", format!("{path:?}: {e}"));
        }
    }
    if !v.is_empty() {
        return Err(v);
    }
    base_dyn.transcode_to::<M>().map_err(|e| {
        let mut v = Violations::default();
        v.add("update_mask", e.to_string());
        v
    })
}

fn copy_path(
    desc: &MessageDescriptor,
    base: &mut DynamicMessage,
    patch: &DynamicMessage,
    segments: &[&str],
) -> Result<(), String> {
    let (first, rest) = segments.split_first().ok_or("empty path")?;
    let field =
        desc.get_field_by_name(first).ok_or_else(|| format!("{first} is not a field of {}", desc.name()))?;
    if rest.is_empty() {
        if patch.has_field(&field) {
            base.set_field(&field, patch.get_field(&field).into_owned());
        } else {
            base.clear_field(&field);
        }
        return Ok(());
    }
    let Kind::Message(sub_desc) = field.kind() else {
        return Err(format!("{first} has no sub-fields"));
    };
    if field.is_list() || field.is_map() {
        return Err(format!("{first} is a list; name it as a whole"));
    }
    let patch_sub = match patch.get_field(&field).as_message() {
        Some(m) => m.clone(),
        None => DynamicMessage::new(sub_desc.clone()),
    };
    let base_sub = base.get_field_mut(&field);
    let prost_reflect::Value::Message(base_sub) = base_sub else {
        return Err(format!("{first} is not a message"));
    };
    copy_path(&sub_desc, base_sub, &patch_sub, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::v1::{Connector, LocalStore, S3Store, connector::Config};

    fn s3(bucket: &str, region: &str) -> Connector {
        Connector {
            display_name: "x".into(),
            config: Some(Config::S3Store(S3Store {
                bucket: bucket.into(),
                region: region.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    const UPDATABLE: &[&str] = &["display_name", "description", "s3_store", "local_store"];

    #[test]
    fn nested_paths_copy_one_field() {
        let got = apply(&s3("a", "eu"), &s3("b", "us"), &["s3_store.bucket".into()], UPDATABLE).unwrap();
        assert_eq!(got, s3("b", "eu"));
    }

    #[test]
    fn whole_fields_and_clearing() {
        let patch = Connector { description: String::new(), ..s3("b", "us") };
        let base = Connector { description: "old".into(), ..s3("a", "eu") };
        let got = apply(&base, &patch, &["s3_store".into(), "description".into()], UPDATABLE).unwrap();
        assert_eq!(got, s3("b", "us"));
    }

    #[test]
    fn oneof_switch_replaces_config() {
        let patch = Connector {
            config: Some(Config::LocalStore(LocalStore { path: "/r".into() })),
            ..Default::default()
        };
        let got = apply(&s3("a", "eu"), &patch, &["local_store".into()], UPDATABLE).unwrap();
        assert!(matches!(got.config, Some(Config::LocalStore(_))));
    }

    #[test]
    fn bad_paths_name_update_mask() {
        for bad in ["name", "nope", "s3_store.nope", "display_name.x"] {
            let err = apply(&s3("a", "eu"), &s3("b", "eu"), &[bad.into()], UPDATABLE).unwrap_err();
            assert_eq!(err.items()[0].0, "update_mask", "{bad}");
        }
        assert!(apply(&s3("a", "eu"), &s3("b", "eu"), &[], UPDATABLE).is_err());
    }
}
