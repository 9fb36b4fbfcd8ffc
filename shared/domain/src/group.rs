//! Groups of a tenant's users and memberships, as records.

use crate::id::Subject;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

/// A group of a tenant's users (for apps' user policies).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub created_at: i64,
}

/// One membership, as stored under both the group and the user (one transaction writes both).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub sub: Subject,
    pub tenant: TenantId,
    pub added_at: i64,
}
