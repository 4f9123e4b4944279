use super::*;

/// The matching rules themselves: a lax matcher would let every scenario pass.
#[test]
fn matching_rules() {
    let ok = |e: Value, a: Value| matches(&e, &a, "$").is_ok();
    assert!(
        ok(json!({"a": 1}), json!({"a": 1, "b": 2})),
        "objects match as subsets"
    );
    assert!(ok(
        json!({"a": {"b": [1, {}]}}),
        json!({"a": {"b": [1, {"c": 3}], "d": 4}})
    ));
    assert!(
        !ok(json!({"a": 1}), json!({"b": 1})),
        "a listed field must be present"
    );
    assert!(
        !ok(json!({"a": null}), json!({})),
        "null is a value, not 'absent'"
    );
    assert!(ok(json!({"a": null}), json!({"a": null})));
    assert!(!ok(json!({"a": 1}), json!({"a": 2})));
    assert!(
        !ok(json!([1, 2]), json!([1, 2, 3])),
        "arrays match by length"
    );
    assert!(
        !ok(json!([2, 1]), json!([1, 2])),
        "and element-wise, in order"
    );
    assert!(ok(json!([{}, {}]), json!([{"x": 1}, {"y": 2}])));
    assert!(ok(json!(1.0), json!(1)), "numbers compare numerically");
    assert!(ok(json!(0.75), json!(3.0 / 4.0)));
    assert!(!ok(json!(0.75), json!(0.76)));
    assert!(!ok(json!(1), json!("1")), "no coercion between types");
    assert!(!ok(json!(false), json!(null)));
    assert!(!ok(json!({}), json!([])));
    assert!(ok(json!("sha256:ab"), json!("sha256:ab")));
}
