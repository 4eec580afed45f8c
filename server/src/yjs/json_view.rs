//! A JSON view of a document's root types, for operators (the admin API's
//! room and snapshot views) and for the tests that compare replicas.

use yrs::{Any, ArrayRef, MapRef, OffsetKind, ReadTxn, TextRef};

use super::restore::{branch_of, root_kind, RootKind};

/// A JSON view of every root of a document, each read as the kind it was
/// declared as or, for roots the server never declared, the kind inferred from
/// its content as a restore does: a text as its string, a map or an array as
/// JSON, an XML fragment as its XML string. Roots of no inferable kind show as
/// yrs's own JSON of them; empty undeclared roots as `null`.
pub fn json_view<T: ReadTxn>(txn: &T, offsets: OffsetKind) -> serde_json::Value {
    use yrs::types::ToJson;
    use yrs::GetString;
    let mut view = serde_json::Map::new();
    for (name, value) in txn.root_refs() {
        let json = match (root_kind(&value, txn, offsets), branch_of(&value)) {
            (Ok(Some(kind)), Some(branch)) => match kind {
                RootKind::Text => serde_json::Value::String(TextRef::from(branch).get_string(txn)),
                RootKind::Map => any_json(&MapRef::from(branch).to_json(txn)),
                RootKind::Array => any_json(&ArrayRef::from(branch).to_json(txn)),
                RootKind::XmlFragment => {
                    serde_json::Value::String(yrs::XmlFragmentRef::from(branch).get_string(txn))
                }
            },
            (Ok(None), _) => serde_json::Value::Null,
            _ => any_json(&value.to_json(txn)),
        };
        view.insert(name.to_owned(), json);
    }
    serde_json::Value::Object(view)
}

fn any_json(any: &Any) -> serde_json::Value {
    serde_json::to_value(any).unwrap_or(serde_json::Value::Null)
}
