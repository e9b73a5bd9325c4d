//! The `WorkflowStore` contract.

use cloacina_domain::TenantName;

use crate::Store;

pub async fn a_tenant_without_packages_lists_no_workflows_and_an_unknown_tenant_none(store: Store) {
    assert_eq!(store.list_workflows(&TenantName::public()).await.unwrap(), Some(Vec::new()));
    assert_eq!(store.list_workflows(&TenantName::parse("never-created").unwrap()).await.unwrap(), None);
}
