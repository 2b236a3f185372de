//! Where each Huawei service lives, per region.
//!
//! Hosts come from a table, not a `{service}.{region}` template: several regions use other
//! host names (TaurusDB is `gaussdbformysql.` in three regions and `gaussdb-mysql.` in one;
//! the EU region is on `myhuaweicloud.eu`), and a template would silently send a request to
//! a host that does not exist or, worse, to another product. Sources: the Go SDK region
//! tables (`services/{iam/v3,ddm/v1,gaussdb/v3}/region/region.go`) and the TaurusDB
//! "Endpoints" page. A region missing here needs `endpoints.<service>` in the config.

use crate::command::{ids, suggest};
use crate::config::{Account, AuthMethod};
use crate::domain::Provider;

pub use crate::cloud::http::Endpoint;

/// A Huawei service the bot talks to. The name is the key of `account.endpoints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Iam,
    Ddm,
    /// GaussDB(for MySQL), a.k.a. TaurusDB.
    Gaussdb,
    /// RDS and ECS are reached only by operations declared in the config.
    Rds,
    Ecs,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Iam,
        Service::Ddm,
        Service::Gaussdb,
        Service::Rds,
        Service::Ecs,
    ];
    /// The endpoint keys of `accounts.<name>.endpoints`.
    pub const KEYS: [&'static str; 5] = ["iam", "ddm", "gaussdb", "rds", "ecs"];

    pub fn key(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Ddm => "ddm",
            Service::Gaussdb => "gaussdb",
            Service::Rds => "rds",
            Service::Ecs => "ecs",
        }
    }

    pub fn from_key(key: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.key() == key)
    }
}

fn iam_host(region: &str) -> Option<&'static str> {
    Some(match region {
        "af-south-1" => "iam.af-south-1.myhuaweicloud.com",
        "ap-southeast-1" => "iam.ap-southeast-1.myhuaweicloud.com",
        "ap-southeast-2" => "iam.ap-southeast-2.myhuaweicloud.com",
        "ap-southeast-3" => "iam.ap-southeast-3.myhuaweicloud.com",
        "cn-east-2" => "iam.cn-east-2.myhuaweicloud.com",
        "cn-east-3" => "iam.cn-east-3.myhuaweicloud.com",
        "cn-north-1" => "iam.cn-north-1.myhuaweicloud.com",
        "cn-north-2" => "iam.cn-north-2.myhuaweicloud.com",
        "cn-north-4" => "iam.cn-north-4.myhuaweicloud.com",
        "cn-north-9" => "iam.cn-north-9.myhuaweicloud.com",
        "cn-south-1" => "iam.cn-south-1.myhuaweicloud.com",
        "cn-south-2" => "iam.cn-south-2.myhuaweicloud.com",
        "cn-southwest-2" => "iam.cn-southwest-2.myhuaweicloud.com",
        "eu-west-0" => "iam.eu-west-0.myhuaweicloud.com",
        "eu-west-101" => "iam.eu-west-101.myhuaweicloud.eu",
        "la-north-2" => "iam.la-north-2.myhuaweicloud.com",
        "la-south-2" => "iam.la-south-2.myhuaweicloud.com",
        "na-mexico-1" => "iam.na-mexico-1.myhuaweicloud.com",
        "sa-brazil-1" => "iam.sa-brazil-1.myhuaweicloud.com",
        _ => return None,
    })
}

fn ddm_host(region: &str) -> Option<&'static str> {
    Some(match region {
        "ap-southeast-1" => "ddm.ap-southeast-1.myhuaweicloud.com",
        "cn-east-2" => "ddm.cn-east-2.myhuaweicloud.com",
        "cn-east-3" => "ddm.cn-east-3.myhuaweicloud.com",
        "cn-north-1" => "ddm.cn-north-1.myhuaweicloud.com",
        "cn-north-4" => "ddm.cn-north-4.myhuaweicloud.com",
        "cn-north-9" => "ddm.cn-north-9.myhuaweicloud.com",
        "cn-south-1" => "ddm.cn-south-1.myhuaweicloud.com",
        "cn-south-2" => "ddm.cn-south-2.myhuaweicloud.com",
        "cn-southwest-2" => "ddm.cn-southwest-2.myhuaweicloud.com",
        "eu-west-101" => "ddm.eu-west-101.myhuaweicloud.eu",
        "la-north-2" => "ddm.la-north-2.myhuaweicloud.com",
        "la-south-2" => "ddm.la-south-2.myhuaweicloud.com",
        "sa-brazil-1" => "ddm.sa-brazil-1.myhuaweicloud.com",
        _ => return None,
    })
}

fn gaussdb_host(region: &str) -> Option<&'static str> {
    Some(match region {
        "af-south-1" => "gaussdb-mysql.af-south-1.myhuaweicloud.com",
        "ap-southeast-1" => "gaussdbformysql.ap-southeast-1.myhuaweicloud.com",
        "ap-southeast-2" => "gaussdbformysql.ap-southeast-2.myhuaweicloud.com",
        "ap-southeast-3" => "gaussdb.ap-southeast-3.myhuaweicloud.com",
        "ap-southeast-4" => "gaussdb.ap-southeast-4.myhuaweicloud.com",
        "cn-east-3" => "gaussdb.cn-east-3.myhuaweicloud.com",
        "cn-north-2" => "gaussdb.cn-north-2.myhuaweicloud.com",
        "cn-north-4" => "gaussdb.cn-north-4.myhuaweicloud.com",
        "cn-north-9" => "gaussdb.cn-north-9.myhuaweicloud.com",
        "cn-south-1" => "gaussdb.cn-south-1.myhuaweicloud.com",
        "cn-southwest-2" => "gaussdb.cn-southwest-2.myhuaweicloud.com",
        "ru-northwest-2" => "gaussdb.ru-northwest-2.myhuaweicloud.com",
        "sa-brazil-1" => "gaussdb.sa-brazil-1.myhuaweicloud.com",
        "tr-west-1" => "gaussdbformysql.tr-west-1.myhuaweicloud.com",
        _ => return None,
    })
}

/// RDS hosts, from the Go SDK's `services/rds/v3/region/region.go` (the EU region is on
/// `myhuaweicloud.eu`).
fn rds_host(region: &str) -> Option<&'static str> {
    Some(match region {
        "af-south-1" => "rds.af-south-1.myhuaweicloud.com",
        "ae-ad-1" => "rds.ae-ad-1.myhuaweicloud.com",
        "ap-southeast-1" => "rds.ap-southeast-1.myhuaweicloud.com",
        "ap-southeast-2" => "rds.ap-southeast-2.myhuaweicloud.com",
        "ap-southeast-3" => "rds.ap-southeast-3.myhuaweicloud.com",
        "ap-southeast-4" => "rds.ap-southeast-4.myhuaweicloud.com",
        "cn-east-2" => "rds.cn-east-2.myhuaweicloud.com",
        "cn-east-3" => "rds.cn-east-3.myhuaweicloud.com",
        "cn-east-5" => "rds.cn-east-5.myhuaweicloud.com",
        "cn-north-1" => "rds.cn-north-1.myhuaweicloud.com",
        "cn-north-2" => "rds.cn-north-2.myhuaweicloud.com",
        "cn-north-4" => "rds.cn-north-4.myhuaweicloud.com",
        "cn-north-9" => "rds.cn-north-9.myhuaweicloud.com",
        "cn-south-1" => "rds.cn-south-1.myhuaweicloud.com",
        "cn-south-2" => "rds.cn-south-2.myhuaweicloud.com",
        "cn-southwest-2" => "rds.cn-southwest-2.myhuaweicloud.com",
        "eu-west-0" => "rds.eu-west-0.myhuaweicloud.com",
        "eu-west-101" => "rds.eu-west-101.myhuaweicloud.eu",
        "la-north-2" => "rds.la-north-2.myhuaweicloud.com",
        "la-south-2" => "rds.la-south-2.myhuaweicloud.com",
        "na-mexico-1" => "rds.na-mexico-1.myhuaweicloud.com",
        "ru-northwest-2" => "rds.ru-northwest-2.myhuaweicloud.com",
        "sa-brazil-1" => "rds.sa-brazil-1.myhuaweicloud.com",
        "tr-west-1" => "rds.tr-west-1.myhuaweicloud.com",
        _ => return None,
    })
}

/// ECS hosts, from the Go SDK's `services/ecs/v2/region/region.go` (which lists the EU
/// region on `myhuaweicloud.com`, unlike the other services; kept as the SDK has it).
fn ecs_host(region: &str) -> Option<&'static str> {
    Some(match region {
        "af-north-1" => "ecs.af-north-1.myhuaweicloud.com",
        "af-south-1" => "ecs.af-south-1.myhuaweicloud.com",
        "ae-ad-1" => "ecs.ae-ad-1.myhuaweicloud.com",
        "ap-southeast-1" => "ecs.ap-southeast-1.myhuaweicloud.com",
        "ap-southeast-2" => "ecs.ap-southeast-2.myhuaweicloud.com",
        "ap-southeast-3" => "ecs.ap-southeast-3.myhuaweicloud.com",
        "ap-southeast-4" => "ecs.ap-southeast-4.myhuaweicloud.com",
        "ap-southeast-5" => "ecs.ap-southeast-5.myhuaweicloud.com",
        "cn-east-2" => "ecs.cn-east-2.myhuaweicloud.com",
        "cn-east-3" => "ecs.cn-east-3.myhuaweicloud.com",
        "cn-east-4" => "ecs.cn-east-4.myhuaweicloud.com",
        "cn-east-5" => "ecs.cn-east-5.myhuaweicloud.com",
        "cn-north-1" => "ecs.cn-north-1.myhuaweicloud.com",
        "cn-north-2" => "ecs.cn-north-2.myhuaweicloud.com",
        "cn-north-4" => "ecs.cn-north-4.myhuaweicloud.com",
        "cn-north-9" => "ecs.cn-north-9.myhuaweicloud.com",
        "cn-north-11" => "ecs.cn-north-11.myhuaweicloud.com",
        "cn-north-12" => "ecs.cn-north-12.myhuaweicloud.com",
        "cn-south-1" => "ecs.cn-south-1.myhuaweicloud.com",
        "cn-south-2" => "ecs.cn-south-2.myhuaweicloud.com",
        "cn-south-4" => "ecs.cn-south-4.myhuaweicloud.com",
        "cn-southwest-2" => "ecs.cn-southwest-2.myhuaweicloud.com",
        "cn-southwest-3" => "ecs.cn-southwest-3.myhuaweicloud.com",
        "eu-west-0" => "ecs.eu-west-0.myhuaweicloud.com",
        "eu-west-101" => "ecs.eu-west-101.myhuaweicloud.com",
        "la-north-2" => "ecs.la-north-2.myhuaweicloud.com",
        "la-south-2" => "ecs.la-south-2.myhuaweicloud.com",
        "me-east-1" => "ecs.me-east-1.myhuaweicloud.com",
        "my-kualalumpur-1" => "ecs.my-kualalumpur-1.myhuaweicloud.com",
        "na-mexico-1" => "ecs.na-mexico-1.myhuaweicloud.com",
        "ru-moscow-1" => "ecs.ru-moscow-1.myhuaweicloud.com",
        "sa-brazil-1" => "ecs.sa-brazil-1.myhuaweicloud.com",
        "tr-west-1" => "ecs.tr-west-1.myhuaweicloud.com",
        _ => return None,
    })
}

/// The public host of `service` in `region`, if the table knows it.
pub fn public_host(service: Service, region: &str) -> Option<&'static str> {
    match service {
        Service::Iam => iam_host(region),
        Service::Ddm => ddm_host(region),
        Service::Gaussdb => gaussdb_host(region),
        Service::Rds => rds_host(region),
        Service::Ecs => ecs_host(region),
    }
}

/// The base URL for `service`: the account's override if any, else the region table.
pub fn resolve(account: &Account, service: Service) -> Result<Endpoint, String> {
    if let Some(base) = account.endpoints.get(service.key()) {
        return Ok(Endpoint {
            base: base.trim_end_matches('/').to_string(),
            overridden: true,
        });
    }
    match public_host(service, &account.region) {
        Some(host) => Ok(Endpoint {
            base: format!("https://{host}"),
            overridden: false,
        }),
        None => Err(format!(
            "no known {} endpoint for region `{}`; set accounts.{}.endpoints.{} to its base URL",
            service.key(),
            account.region,
            account.name,
            service.key()
        )),
    }
}

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

const CHECKED: [Service; 5] = Service::ALL;

/// A problem (key, message) when a Huawei account's region is unknown to the table and the
/// account overrides no endpoint, or when password auth has no IAM endpoint.
pub fn check_account(account: &Account) -> Option<(String, String)> {
    // Other providers, and a region already refused by its pattern, are not for this table.
    if account.provider != Provider::Huawei || !ids::REGION.matches(&account.region) {
        return None;
    }
    let known = CHECKED
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
    if account.provider != Provider::Huawei {
        return None;
    }
    let service = match service {
        "ddm" => Service::Ddm,
        "taurus-proxy" => Service::Gaussdb,
        _ => return None,
    };
    resolve(account, service).err()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_region_is_in_the_table() {
        for region in HUAWEI_REGIONS {
            assert!(
                CHECKED.iter().any(|s| public_host(*s, region).is_some()),
                "{region}"
            );
        }
    }

    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::config::{AuthMethod, SecretRef};
    use crate::domain::Provider;

    fn account(region: &str, endpoints: &[(&str, &str)]) -> Account {
        Account {
            name: "acct".into(),
            provider: Provider::Huawei,
            region: region.into(),
            project_id: Some("0123456789abcdef0123456789abcdef".into()),
            default: false,
            auth: AuthMethod::Password,
            iam_user: None,
            iam_domain: None,
            password: SecretRef::default(),
            access_key: SecretRef::default(),
            secret_key: SecretRef::default(),
            token: SecretRef::default(),
            endpoints: endpoints
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            poll_interval: None,
            request_timeout: Duration::from_secs(30),
            settings: Default::default(),
        }
    }

    fn base(region: &str, service: Service) -> String {
        resolve(&account(region, &[]), service).unwrap().base
    }

    #[test]
    fn common_regions_follow_the_usual_pattern() {
        assert_eq!(
            base("cn-north-4", Service::Iam),
            "https://iam.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(
            base("cn-north-4", Service::Ddm),
            "https://ddm.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(
            base("cn-north-4", Service::Gaussdb),
            "https://gaussdb.cn-north-4.myhuaweicloud.com"
        );
    }

    #[test]
    fn documented_exceptions_are_in_the_table() {
        for region in ["ap-southeast-1", "ap-southeast-2", "tr-west-1"] {
            assert_eq!(
                base(region, Service::Gaussdb),
                format!("https://gaussdbformysql.{region}.myhuaweicloud.com")
            );
        }
        assert_eq!(
            base("af-south-1", Service::Gaussdb),
            "https://gaussdb-mysql.af-south-1.myhuaweicloud.com"
        );
        assert_eq!(
            base("eu-west-101", Service::Ddm),
            "https://ddm.eu-west-101.myhuaweicloud.eu"
        );
        assert_eq!(
            base("eu-west-101", Service::Iam),
            "https://iam.eu-west-101.myhuaweicloud.eu"
        );
    }

    #[test]
    fn unknown_region_is_an_error_naming_the_override() {
        let err = resolve(&account("xx-nowhere-9", &[]), Service::Ddm).unwrap_err();
        assert!(err.contains("accounts.acct.endpoints.ddm"), "{err}");
        // DDM is not offered in af-south-1 even though IAM is.
        assert!(resolve(&account("af-south-1", &[]), Service::Ddm).is_err());
        assert!(resolve(&account("af-south-1", &[]), Service::Iam).is_ok());
    }

    #[test]
    fn override_wins_and_is_marked() {
        let acc = account("xx-nowhere-9", &[("ddm", "http://127.0.0.1:8080/")]);
        let ep = resolve(&acc, Service::Ddm).unwrap();
        assert_eq!(ep.base, "http://127.0.0.1:8080");
        assert!(ep.overridden);
        // Only the overridden service is affected.
        assert!(resolve(&acc, Service::Iam).is_err());
        let public = resolve(&account("cn-north-4", &[]), Service::Ddm).unwrap();
        assert!(!public.overridden);
    }
}
