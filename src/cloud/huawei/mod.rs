//! Huawei Cloud: IAM token and AK/SK auth shared by DDM and TaurusDB.
//! (Placeholder until the Huawei client lands.)

pub mod ddm;

use std::sync::Arc;

use crate::config::Account;

pub struct HuaweiClient {
    pub account: Arc<Account>,
    pub http: reqwest::Client,
}

impl HuaweiClient {
    pub fn new(account: Arc<Account>, http: reqwest::Client) -> HuaweiClient {
        HuaweiClient { account, http }
    }
}
