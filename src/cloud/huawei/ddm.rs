//! DDM instance restart (placeholder until the Huawei client lands).

use std::sync::Arc;

use crate::cloud::registry::AccountClients;
use crate::cloud::CloudOperation;

pub fn build(_clients: &AccountClients) -> Result<Arc<dyn CloudOperation>, String> {
    Err("DDM restart is not built yet".to_string())
}
