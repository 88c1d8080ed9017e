//! The AWS regions a tenant may live in: every region of every AWS partition known
//! when this list was written, plus the names an operator configures for regions
//! opened since (`--extra-regions` / `TENANTCTL_EXTRA_REGIONS`). A name outside both is
//! a typo or an invention, and no stack could ever be created there.

use std::collections::BTreeSet;
use std::sync::RwLock;

use super::InvalidValue;

/// The regions of the partitions `aws`, `aws-cn`, `aws-us-gov`, `aws-iso`,
/// `aws-iso-b`, `aws-iso-e`, `aws-iso-f` and `aws-eusc`, as the SDK's partition data
/// names them.
pub const KNOWN_REGIONS: &[&str] = &[
    // aws
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    // aws-cn
    "cn-north-1",
    "cn-northwest-1",
    // aws-us-gov
    "us-gov-east-1",
    "us-gov-west-1",
    // aws-iso, aws-iso-b, aws-iso-e, aws-iso-f
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    // aws-eusc
    "eusc-de-east-1",
];

/// Regions configured on top of [`KNOWN_REGIONS`].
static EXTRA_REGIONS: RwLock<BTreeSet<String>> = RwLock::new(BTreeSet::new());

/// Whether `name` is a known or configured region.
pub(crate) fn is_region(name: &str) -> bool {
    KNOWN_REGIONS.contains(&name)
        || EXTRA_REGIONS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(name)
}

/// Every region `is_region` accepts, known ones first.
pub(crate) fn all_regions() -> Vec<String> {
    let extra = EXTRA_REGIONS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    KNOWN_REGIONS
        .iter()
        .map(|r| r.to_string())
        .chain(
            extra
                .iter()
                .filter(|r| !KNOWN_REGIONS.contains(&r.as_str()))
                .cloned(),
        )
        .collect()
}

/// Accepts `names` as regions from now on, for regions newer than [`KNOWN_REGIONS`].
/// Each must still be shaped like a region name (`xx-name-1`); nothing is added if one
/// is not.
pub fn allow_extra_regions<S: AsRef<str>>(names: &[S]) -> Result<(), InvalidValue> {
    for name in names {
        let name = name.as_ref();
        if !shaped_like_a_region(name) {
            return Err(InvalidValue::new(
                "extra region",
                name,
                "expected an AWS region name like ap-southeast-9: lowercase words joined by '-', ending in a number",
            ));
        }
    }
    let mut extra = EXTRA_REGIONS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    extra.extend(names.iter().map(|n| n.as_ref().to_owned()));
    Ok(())
}

/// `xx-word-1`, `xx-word-word-1`, `xxxx-xx-word-1`: two to four lowercase words and
/// a positive number.
fn shaped_like_a_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    (2..=4).contains(&words.len())
        && (2..=4).contains(&words[0].len())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.len() <= 12 && w.chars().all(|c| c.is_ascii_lowercase()))
        && number.len() <= 2
        && number.parse::<u8>().is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_known_region_is_shaped_like_one_and_listed_once() {
        let unique: BTreeSet<&&str> = KNOWN_REGIONS.iter().collect();
        assert_eq!(unique.len(), KNOWN_REGIONS.len());
        for region in KNOWN_REGIONS {
            assert!(shaped_like_a_region(region), "{region}");
        }
    }

    #[test]
    fn configured_regions_are_accepted_and_odd_names_refused() {
        assert!(!is_region("ap-southeast-9"));
        allow_extra_regions(&["ap-southeast-9"]).unwrap();
        assert!(is_region("ap-southeast-9"));
        for bad in [
            "zz",
            "us-east",
            "us-east-0",
            "US-EAST-1",
            "us-east-1a",
            "x-y-1",
            "",
        ] {
            let err = allow_extra_regions(&[bad, "ap-southeast-8"]).unwrap_err();
            assert!(err.to_string().contains("like ap-southeast-9"), "{err}");
        }
        assert!(!is_region("ap-southeast-8"), "a refused list adds nothing");
    }

    proptest! {
        #[test]
        fn a_region_shaped_name_outside_the_lists_is_refused(s in "[a-z]{2}-[a-z]{3,9}-[0-9]") {
            // ap-southeast-* may be configured by the test above, running alongside.
            prop_assume!(!KNOWN_REGIONS.contains(&s.as_str()) && !s.starts_with("ap-southeast-"));
            let err = crate::domain::Region::parse(&s).unwrap_err().to_string();
            prop_assert!(err.contains("not an AWS region"), "{}", err);
        }
    }
}
