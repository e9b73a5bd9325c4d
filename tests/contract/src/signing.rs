//! The `SigningStore` contract, and signed uploads: a tenant's trusted keys and policy kept
//! alike on every backend, and `store_package` refusing each kind of bad signature, in its
//! own transaction, once signatures are required.

use chrono::Utc;
use cloacina_domain::TenantName;
use cloacina_domain::package::{
    NewPackage, PackageStored, SignaturePolicy, SignatureRefused, SigningSecret, TrustedSigner,
};
use cloacina_domain::ports::{Lookup, SignerAdded};
use uuid::Uuid;

use crate::Store;
use crate::noted;
use crate::triggers::package;

fn trusted(name: &str, secret: &SigningSecret) -> TrustedSigner {
    TrustedSigner {
        id: Uuid::new_v4(),
        name: name.into(),
        key: secret.public(),
        created_at: crate::executions::t0(),
        created_by: Some(cloacina_domain::ApiKeyId::from_uuid(Uuid::from_u128(0xAD))),
    }
}

/// A package whose archive digest is `content_hash`, with `signature` beside it.
fn signed(version: &str, signature: Option<String>) -> NewPackage {
    let mut p = package("signed", version, &[]);
    p.content_hash = format!("{:0>64}", version.replace('.', ""));
    p.signature = signature;
    p
}

fn required(on: bool) -> SignaturePolicy {
    SignaturePolicy { require_signatures: on, updated_at: Some(Utc::now()), updated_by: None }
}

pub async fn trusted_keys_are_added_once_listed_and_removed(store: Store) {
    let p = TenantName::public();
    let release = SigningSecret::from_seed([1; 32]);
    let added = store.add_signer(&p, &trusted("release", &release), &noted()).await.unwrap();
    assert!(matches!(added, Some(SignerAdded::Added(_))));
    let again = store.add_signer(&p, &trusted("release", &SigningSecret::from_seed([2; 32])), &noted()).await.unwrap();
    assert_eq!(again, Some(SignerAdded::NameTaken));
    let same_key = store.add_signer(&p, &trusted("other-name", &release), &noted()).await.unwrap();
    assert_eq!(same_key, Some(SignerAdded::KeyTaken("release".into())));
    store.add_signer(&p, &trusted("ci", &SigningSecret::from_seed([3; 32])), &noted()).await.unwrap();
    let listed = store.list_signers(&p).await.unwrap().unwrap();
    assert_eq!(listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["ci", "release"]);
    assert_eq!(listed[1].key, release.public());
    assert_eq!(listed[1].created_by, Some(cloacina_domain::ApiKeyId::from_uuid(Uuid::from_u128(0xAD))));
    assert!(matches!(store.remove_signer(&p, "ci", &noted()).await.unwrap(), Lookup::Found(_)));
    assert!(matches!(store.remove_signer(&p, "ci", &noted()).await.unwrap(), Lookup::Missing));
    assert_eq!(store.list_signers(&p).await.unwrap().unwrap().len(), 1);
    // The policy: off until set, then as set.
    assert!(!store.signature_policy(&p).await.unwrap().unwrap().require_signatures);
    let set = store.set_signature_policy(&p, &required(true), &noted()).await.unwrap().unwrap();
    assert!(set.require_signatures && set.updated_at.is_some());
    assert!(store.signature_policy(&p).await.unwrap().unwrap().require_signatures);
    let stranger = TenantName::parse("nobody-here").unwrap();
    assert!(store.list_signers(&stranger).await.unwrap().is_none());
    assert!(store.signature_policy(&stranger).await.unwrap().is_none());
}

pub async fn once_required_each_bad_signature_is_refused_and_a_good_one_stored(store: Store) {
    let p = TenantName::public();
    let release = SigningSecret::from_seed([1; 32]);
    let stranger = SigningSecret::from_seed([9; 32]);
    store.add_signer(&p, &trusted("release", &release), &noted()).await.unwrap();
    // Not required: unsigned and untrusted uploads pass.
    let up = |n: NewPackage| {
        let store = store.clone();
        async move { store.store_package(&TenantName::public(), &n, &noted()).await.unwrap().unwrap() }
    };
    assert!(matches!(up(signed("1.0.0", None)).await, PackageStored::Created(_)));
    let by_stranger = |v: &str| stranger.sign(&format!("{:0>64}", v.replace('.', ""))).unwrap().to_text();
    assert!(matches!(up(signed("1.0.1", Some(by_stranger("1.0.1")))).await, PackageStored::Created(_)));

    store.set_signature_policy(&p, &required(true), &noted()).await.unwrap();
    let by_release = |v: &str| release.sign(&format!("{:0>64}", v.replace('.', ""))).unwrap().to_text();
    let refused = |stored: PackageStored| match stored {
        PackageStored::Unsigned(r) => r.code(),
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(refused(up(signed("2.0.0", None)).await), "signature_not_found");
    assert_eq!(refused(up(signed("2.0.1", Some(by_stranger("2.0.1")))).await), "untrusted_signer");
    // Signed for other bytes: the archive was changed after signing.
    assert_eq!(refused(up(signed("2.0.2", Some(by_release("9.9.9")))).await), "package_tampered");
    assert_eq!(refused(up(signed("2.0.3", Some("not a signature".into()))).await), "invalid_signature");
    let versions = |store: Store| async move {
        let listed = store.list_packages(&TenantName::public()).await.unwrap().unwrap();
        listed.iter().map(|p| p.version.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(versions(store.clone()).await, ["1.0.1", "1.0.0"], "nothing refused was stored");
    assert!(matches!(up(signed("3.0.0", Some(by_release("3.0.0")))).await, PackageStored::Created(_)));
    assert_eq!(versions(store.clone()).await, ["3.0.0", "1.0.1", "1.0.0"]);
    // A removed key signs nothing more.
    assert!(matches!(store.remove_signer(&p, "release", &noted()).await.unwrap(), Lookup::Found(_)));
    let refused_now = up(signed("3.0.1", Some(by_release("3.0.1")))).await;
    assert_eq!(refused(refused_now), SignatureRefused::Untrusted(release.public().id()).code());
}
