//! `--set KEY=VALUE` overrides, applied to the located tree before it is read into structs.
//!
//! `KEY` is a dotted path. A segment under a list picks an item by index or by its name (the
//! first of `name_keys` the item has, e.g. `name` then `op` for pipeline steps), so
//! `steps.dedupe.threshold=0.8` and `stages.hero.epochs=1` edit the item the user means. Missing
//! mapping keys are created; the value is parsed as YAML and carries `--set ARG` as its origin,
//! so a wrong type is reported against the argument.

use crate::de::closest;
use crate::yaml::{self, Key, Node, Origin, Value};

/// Applies one `--set KEY=VALUE` to the tree; `name_keys` are the keys that name list items.
pub fn apply_set(
    root: &mut Node,
    arg: &str,
    env: &dyn Fn(&str) -> Option<String>,
    name_keys: &[&str],
) -> Result<(), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("--set {arg}: expected KEY=VALUE"))?;
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("--set {arg}: empty segment in key {key:?}"));
    }
    let mut value = yaml::parse(value, env).map_err(|e| format!("--set {arg}: {e}"))?;
    set_origin(&mut value, &Origin::Set(arg.to_string()));
    let mut node = root;
    let mut rest = &segments[..];
    while let Some((seg, tail)) = rest.split_first() {
        if let Value::Seq(_) = node.value {
            node = find_item(node, seg, name_keys).map_err(|m| format!("--set {arg}: {m}"))?;
            if tail.is_empty() {
                return Err(format!("--set {arg}: name a key inside the item"));
            }
            rest = tail;
            continue;
        }
        let child = map_child(node, seg, arg)?;
        if tail.is_empty() {
            let path = child.path.clone();
            *child = value;
            child.relabel(&path);
            return Ok(());
        }
        node = child;
        rest = tail;
    }
    Err(format!("--set {arg}: empty key"))
}

/// The child `seg` of a mapping node, created empty when missing.
fn map_child<'a>(node: &'a mut Node, seg: &str, arg: &str) -> Result<&'a mut Node, String> {
    let parent_path = node.path.clone();
    let kind = node.kind();
    let Value::Map(entries) = &mut node.value else {
        return Err(format!(
            "--set {arg}: {parent_path} is {kind}, not a mapping"
        ));
    };
    let pos = match entries.iter().position(|(k, _)| k.name == seg) {
        Some(p) => p,
        None => {
            let at = Origin::Set(arg.to_string());
            let empty = Node {
                value: Value::Map(Vec::new()),
                at: at.clone(),
                path: String::new(),
            };
            let key = Key {
                name: seg.to_string(),
                at,
            };
            entries.push((key, empty));
            entries.len() - 1
        }
    };
    let Some((_, child)) = entries.get_mut(pos) else {
        return Err(format!(
            "--set {arg}: internal: mapping changed while editing"
        ));
    };
    child.path = yaml::child_path(&parent_path, seg);
    Ok(child)
}

fn set_origin(node: &mut Node, at: &Origin) {
    node.at = at.clone();
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| set_origin(n, at)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            k.at = at.clone();
            set_origin(v, at);
        }),
        _ => {}
    }
}

fn item_name<'a>(item: &'a Node, name_keys: &[&str]) -> Option<&'a str> {
    name_keys
        .iter()
        .find_map(|k| item.get(k).and_then(Node::as_str))
}

/// The list item `which` names: an index, or the value of one of its `name_keys`.
fn find_item<'a>(
    list: &'a mut Node,
    which: &str,
    name_keys: &[&str],
) -> Result<&'a mut Node, String> {
    let path = list.path.clone();
    let Value::Seq(items) = &mut list.value else {
        return Err(format!("{path} is not a list"));
    };
    let names: Vec<String> = items
        .iter()
        .filter_map(|s| item_name(s, name_keys).map(String::from))
        .collect();
    let index = match which.parse::<usize>() {
        Ok(i) if i < items.len() => i,
        _ => items
            .iter()
            .position(|s| item_name(s, name_keys) == Some(which))
            .ok_or_else(|| {
                let hint = closest(which, names.iter().map(String::as_str))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                format!(
                    "no entry of {path} is named `{which}`; names: {}{hint}",
                    names.join(", ")
                )
            })?,
    };
    items
        .get_mut(index)
        .ok_or_else(|| format!("{path} has no entry {index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const DOC: &str =
        "stages:\n  - name: zero\n    epochs: 3\n  - name: hero\n    epochs: 3\nlr: 1.0e-5\n";

    #[test]
    fn list_items_are_picked_by_name_or_index() {
        let mut root = yaml::parse(DOC, &no_env).expect("valid in the test");
        apply_set(&mut root, "stages.hero.epochs=1", &no_env, &["name"])
            .expect("valid in the test");
        apply_set(&mut root, "stages.0.epochs=2", &no_env, &["name"]).expect("valid in the test");
        let stages = root.get("stages").expect("valid in the test");
        let Value::Seq(items) = &stages.value else {
            panic!("not a list")
        };
        assert_eq!(
            items[0].get("epochs").expect("valid in the test").value,
            Value::Int(2)
        );
        let hero = items[1].get("epochs").expect("valid in the test");
        assert_eq!(hero.value, Value::Int(1));
        assert_eq!(hero.path, "stages[1].epochs");
        assert_eq!(hero.at, Origin::Set("stages.hero.epochs=1".into()));
    }

    #[test]
    fn misnamed_items_and_scalars_are_refused_with_the_names() {
        let mut root = yaml::parse(DOC, &no_env).expect("valid in the test");
        let e =
            apply_set(&mut root, "stages.heor.epochs=1", &no_env, &["name"]).expect_err("refused");
        assert!(
            e.contains("`heor`") && e.contains("did you mean `hero`"),
            "{e}"
        );
        let e = apply_set(&mut root, "lr.x=1", &no_env, &["name"]).expect_err("refused");
        assert!(
            e.contains("lr is a number, not a mapping") || e.contains("not a mapping"),
            "{e}"
        );
        apply_set(&mut root, "optimizer.betas=[0.9, 0.95]", &no_env, &["name"])
            .expect("valid in the test");
        assert_eq!(
            root.get("optimizer").expect("valid in the test").path,
            "optimizer"
        );
    }
}
