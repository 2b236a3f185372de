//! Huawei regions against the built-in endpoint table: a region the table does not know works
//! only with explicit `endpoints`, so a typo (`cn-noth-4`) is a config error, not a failed job.

use super::{Account, AuthMethod};
use crate::cloud::huawei::endpoints::{public_host, resolve, Service};
use crate::command::suggest;

/// Regions in the built-in table (any service), for "did you mean"; a test keeps it true.
pub const HUAWEI_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "cn-east-2",
    "cn-east-3",
    "cn-north-1",
    "cn-north-2",
    "cn-north-4",
    "cn-north-9",
    "cn-south-1",
    "cn-south-2",
    "cn-southwest-2",
    "eu-west-0",
    "eu-west-101",
    "la-north-2",
    "la-south-2",
    "na-mexico-1",
    "ru-northwest-2",
    "sa-brazil-1",
    "tr-west-1",
];

const SERVICES: [Service; 3] = [Service::Iam, Service::Ddm, Service::Gaussdb];

/// A problem (key, message) when a Huawei account's region is unknown to the table and the
/// account overrides no endpoint, or when password auth has no IAM endpoint.
pub fn check_account(account: &Account) -> Option<(String, String)> {
    let known = SERVICES
        .iter()
        .any(|s| public_host(*s, &account.region).is_some());
    if !known && account.endpoints.is_empty() {
        return Some((
            "region".into(),
            format!(
                "region `{}` is not in opsgate's endpoint table; set endpoints (iam, ddm, gaussdb) \
                 for it{}",
                account.region,
                suggest::did_you_mean(&account.region, HUAWEI_REGIONS.iter().copied())
            ),
        ));
    }
    if account.auth == AuthMethod::Password {
        if let Err(e) = resolve(account, Service::Iam) {
            return Some(("endpoints".into(), e));
        }
    }
    None
}

/// The endpoint a target's service needs on its Huawei account, if it cannot be found.
pub fn check_service(account: &Account, service: &str) -> Option<String> {
    let service = match service {
        "ddm" => Service::Ddm,
        "taurus-proxy" => Service::Gaussdb,
        _ => return None,
    };
    resolve(account, service).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_region_is_in_the_table() {
        for region in HUAWEI_REGIONS {
            assert!(
                SERVICES.iter().any(|s| public_host(*s, region).is_some()),
                "{region}"
            );
        }
    }
}
