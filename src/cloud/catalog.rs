//! The built-in operations: the one list of them. An operation on an existing service is one
//! module (its row, checks, request, submit, poll, reconcile and dry-run description) plus
//! one line here.

use std::sync::Arc;

use super::operation::BuiltIn;
use super::{alibaba, huawei, scnet};
use crate::command::Catalog;
use crate::config::Builtins;

pub const OPERATIONS: &[BuiltIn] = &[
    huawei::ddm::OPERATION,
    huawei::taurus_restart::OPERATION,
    huawei::taurus_upgrade::OPERATION,
    alibaba::sae::OPERATION,
    scnet::restart::OPERATION,
];

/// What config validation needs to know of the built-in operations and the clouds.
pub fn builtins() -> Builtins {
    Builtins {
        catalog: Catalog::new(OPERATIONS.iter().map(|op| Arc::new((op.def)())).collect()),
        check_account: huawei::endpoints::check_account,
        check_service: huawei::endpoints::check_service,
        check_endpoint: super::declared::check_endpoint,
        endpoint_keys: super::declared::endpoint_keys,
    }
}
