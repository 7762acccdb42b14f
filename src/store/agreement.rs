//! Whether the configuration and the store agree: every tenant and city the
//! configuration's numbers name must exist in the store, and a number naming both
//! must name the tenant's own city. A call on a number whose tenant the store does
//! not know could be neither journalled nor called back, so `serve` refuses to start
//! until they agree, and `check-config --database URL` lists the same faults.
//!
//! The check is pure over what the store holds ([`disagreements`]); the store only
//! loads the tenants and cities.

use std::collections::HashMap;

use super::backend::{dispatch, per_backend};
use super::{Store, StoreError};

per_backend!("sql/agreement.rs");

/// Something in the configuration that names a tenant or a city of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where it is written (`sip-config/dispatchline.toml:42`).
    pub location: String,
    /// What it is (`number +73432000001`).
    pub what: String,
    /// The tenant it names.
    pub tenant: Option<String>,
    /// The city it names.
    pub city: Option<String>,
}

/// The store's tenants (code → city code) and cities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Tenant code → its city's code.
    pub tenants: HashMap<String, String>,
    /// City codes.
    pub cities: Vec<String>,
}

/// One line per disagreement, `location: message`, each saying how to fix it.
pub fn disagreements(references: &[Reference], known: &Known) -> Vec<String> {
    let mut faults = Vec::new();
    for r in references {
        if let Some(tenant) = &r.tenant {
            match known.tenants.get(tenant) {
                None => faults.push(format!(
                    "{}: {} names tenant \"{tenant}\", which the store does not have; create it with \
                     `dispatchline import WORKBOOK --tenant {tenant}` (the workbook's company sheet \
                     gives its name and city) or POST /api/v1/tenants",
                    r.location, r.what
                )),
                Some(tenant_city) => {
                    if let Some(city) = r.city.as_ref().filter(|c| *c != tenant_city) {
                        faults.push(format!(
                            "{}: {} names city \"{city}\", but tenant \"{tenant}\" is in \"{tenant_city}\" \
                             in the store; correct the number's city",
                            r.location, r.what
                        ));
                    }
                }
            }
        }
        if let Some(city) = &r.city {
            if !known.cities.iter().any(|c| c == city) {
                faults.push(format!(
                    "{}: {} names city \"{city}\", which the store does not have; create it with \
                     POST /api/v1/cities or the company sheet of an onboarding workbook",
                    r.location, r.what
                ));
            }
        }
    }
    faults
}

impl Store {
    /// The tenants and cities the store holds.
    pub async fn known_tenants(&self) -> Result<Known, StoreError> {
        dispatch!(self, known())
    }

    /// Every disagreement between `references` and the store (empty: they agree).
    pub async fn check_agreement(
        &self,
        references: &[Reference],
    ) -> Result<Vec<String>, StoreError> {
        Ok(disagreements(references, &self.known_tenants().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(tenant: Option<&str>, city: Option<&str>) -> Reference {
        Reference {
            location: "d.toml:7".into(),
            what: "number +73432000001".into(),
            tenant: tenant.map(Into::into),
            city: city.map(Into::into),
        }
    }

    #[test]
    fn missing_tenants_and_cities_are_each_a_fault_with_the_fix() {
        let known = Known {
            tenants: [("uyut".to_owned(), "ekb".to_owned())].into(),
            cities: vec!["ekb".into()],
        };
        assert!(disagreements(&[number(Some("uyut"), Some("ekb"))], &known).is_empty());
        let faults = disagreements(
            &[
                number(Some("etalon"), Some("ekb")),
                number(None, Some("msk")),
                number(Some("uyut"), Some("ekb2")),
            ],
            &known,
        );
        assert_eq!(faults.len(), 4, "{faults:#?}");
        assert!(faults[0].starts_with("d.toml:7: number +73432000001 names tenant \"etalon\", which the store does not have; create it with `dispatchline import"));
        assert!(faults[1].contains("city \"msk\", which the store does not have"));
        assert!(faults[2].contains("tenant \"uyut\" is in \"ekb\""));
    }
}
