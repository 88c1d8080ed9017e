//! The write units a stretch of a benchmark consumed, by operation and part written
//! (`DynamoStore::write_units_by_operation`), so `engine` and `rollout` break their
//! totals down the same way. Each benchmark includes this file with `#[path]`.

use std::collections::HashMap;

use tenant_orchestrator::store::DynamoStore;

/// The units booked so far, to subtract from a later reading.
pub struct UnitsMark(HashMap<String, f64>);

pub fn mark(store: &DynamoStore) -> UnitsMark {
    UnitsMark(store.write_units_by_operation().into_iter().collect())
}

/// The units booked since `mark`, by operation and part, divided by `per`, largest
/// first.
pub fn since(store: &DynamoStore, mark: &UnitsMark, per: f64) -> Vec<(String, f64)> {
    let mut parts: Vec<(String, f64)> = (store.write_units_by_operation().into_iter())
        .map(|(part, units)| {
            let earlier = mark.0.get(&part).copied().unwrap_or(0.0);
            (part, (units - earlier) / per)
        })
        .filter(|(_, units)| *units > 0.0)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    parts
}
