//! What importing a questionnaire would change: its rows compared with what the
//! store holds for the tenant. Pure; the store loads [`Current`] and applies the
//! [`Plan`] in one transaction. References between sheets and to the store are
//! checked here, and each broken one is a fault at the cell that makes it.
//!
//! An import adds and updates, it never deletes: a house, employee or supplier the
//! workbook does not list stays as it is; an employee's weekly shifts are replaced
//! by those the workbook lists for them (if it lists any); absences are added (one
//! entered in the console stays). Importing the same workbook twice changes nothing
//! the second time.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::questionnaire::{At, HouseRow, Questionnaire, ReasonRow};
use super::workbook::SheetKind;
use crate::phone::PhoneNumber;
use crate::store::assignment::{Absence, Shift};
use crate::store::tickets::Category;

/// What the import does to the records of one sheet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records that do not exist yet.
    pub created: usize,
    /// Records that exist and differ.
    pub changed: usize,
    /// Records that exist as the workbook says.
    pub unchanged: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HouseNow {
    pub(crate) id: i64,
    pub(crate) address: String,
    pub(crate) group: Option<String>,
    pub(crate) floors: i64,
    pub(crate) entrances: i64,
    pub(crate) lifts: i64,
    pub(crate) notes: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReasonNow {
    pub(crate) id: i64,
    pub(crate) category: Category,
    pub(crate) title: String,
    pub(crate) work_type: String,
    pub(crate) deadline_minutes: i64,
    pub(crate) operator_text: String,
    pub(crate) needs_supplier: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmployeeNow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) position: String,
    pub(crate) phones: Vec<String>,
    pub(crate) work_types: Vec<String>,
    pub(crate) shifts: Vec<Shift>,
    pub(crate) absences: Vec<Absence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CellNow {
    pub(crate) levels: [Vec<i64>; 3],
    pub(crate) responsible: Option<i64>,
    pub(crate) manager: Option<i64>,
    pub(crate) head: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SupplierNow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) city: String,
    pub(crate) phones: Vec<String>,
}

/// What the store holds that the import compares with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Current {
    /// The company's city (named by the company sheet, else the tenant's): id, name,
    /// time zone.
    pub(crate) city: Option<(i64, String, String)>,
    /// The tenant: id, name, city code.
    pub(crate) tenant: Option<(i64, String, String)>,
    pub(crate) work_types: HashMap<String, String>,
    pub(crate) groups: HashMap<String, (i64, String)>,
    pub(crate) houses: HashMap<String, HouseNow>,
    pub(crate) apartments: HashMap<(i64, String), (Option<i64>, Option<i64>)>,
    pub(crate) reasons: HashMap<String, ReasonNow>,
    pub(crate) employees: HashMap<String, EmployeeNow>,
    pub(crate) cells: HashMap<(String, String), CellNow>,
    pub(crate) suppliers: HashMap<String, SupplierNow>,
    pub(crate) contacts: HashSet<(String, i64, String)>,
}

/// A house by id, or by key when the import creates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HouseRef {
    Id(i64),
    New(String),
}

/// An employee by id, or by personnel number when the import creates them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum EmployeeRef {
    Id(i64),
    New(String),
}

/// An apartment to add or correct.
#[derive(Debug, Clone)]
pub(crate) struct ApartmentWrite {
    pub(crate) house: HouseRef,
    pub(crate) number: String,
    pub(crate) entrance: Option<i64>,
    pub(crate) floor: Option<i64>,
    /// Whether it exists (then only its entrance and floor change).
    pub(crate) exists: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct EmployeeWrite {
    pub(crate) id: Option<i64>,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) position: String,
    pub(crate) phones: Vec<String>,
    pub(crate) work_types: Vec<String>,
    /// The weekly schedule to replace theirs with, if the workbook gives one.
    pub(crate) shifts: Option<Vec<Shift>>,
    pub(crate) new_absences: Vec<Absence>,
}

#[derive(Debug, Clone)]
pub(crate) struct CellWrite {
    pub(crate) group: String,
    pub(crate) work_type: String,
    pub(crate) levels: [Vec<EmployeeRef>; 3],
    pub(crate) responsible: Option<EmployeeRef>,
    pub(crate) manager: Option<EmployeeRef>,
    pub(crate) head: Option<EmployeeRef>,
}

/// What to write, each list holding only what is new or changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// The city to create or update: code, name, time zone.
    pub(crate) city: Option<(String, String, String)>,
    /// The tenant to create or rename: code, name, city code.
    pub(crate) tenant: Option<(String, String, String)>,
    pub(crate) work_types: Vec<(String, String)>,
    pub(crate) groups: Vec<(String, String)>,
    pub(crate) houses: Vec<(Option<i64>, HouseRow)>,
    pub(crate) apartments: Vec<ApartmentWrite>,
    pub(crate) reasons: Vec<(Option<i64>, ReasonRow)>,
    pub(crate) suppliers: Vec<(Option<i64>, String, String, Vec<String>)>,
    pub(crate) employees: Vec<EmployeeWrite>,
    pub(crate) cells: Vec<CellWrite>,
    pub(crate) contacts: Vec<(String, HouseRef, String)>,
    pub(crate) counts: BTreeMap<SheetKind, Counts>,
}

impl Plan {
    fn count(&mut self, sheet: SheetKind, exists: bool, same: bool) {
        let c = self.counts.entry(sheet).or_default();
        match (exists, same) {
            (false, _) => c.created += 1,
            (true, false) => c.changed += 1,
            (true, true) => c.unchanged += 1,
        }
    }

    /// Whether applying it would write anything.
    pub(crate) fn changes_anything(&self) -> bool {
        self.counts.values().any(|c| c.created + c.changed > 0)
    }
}

fn phones_text(phones: &[PhoneNumber]) -> Vec<String> {
    phones.iter().map(|p| p.as_str().to_owned()).collect()
}

/// Compares the questionnaire with the store for `tenant`; faults go into `q`.
pub(crate) fn plan(q: &mut Questionnaire, tenant: &str, current: &Current) -> Plan {
    let mut plan = Plan::default();

    // The company and its city.
    let mut city_code = current.tenant.as_ref().map(|t| t.2.clone());
    match (q.company.take(), &current.tenant) {
        // A company row with a bad cell already says what is wrong with it.
        (None, None) if q.has_faults_in(SheetKind::Company) => {}
        (None, None) => q.faults.push(super::questionnaire::CellFault {
            sheet: SheetKind::Company.title().to_owned(),
            cell: "A2".into(),
            message: format!(
                "the store has no tenant `{tenant}`: the company sheet must give its name and city"
            ),
        }),
        (None, Some(_)) => {}
        (Some(company), existing) => {
            if let Some((_, _, their_city)) = existing {
                if *their_city != company.city_code {
                    q.fault(
                        company.at,
                        "Код города",
                        format!(
                            "tenant `{tenant}` is in city `{their_city}`; an import does not move a company"
                        ),
                    );
                }
            }
            let same_city = current.city.as_ref().is_some_and(|(_, name, tz)| {
                *name == company.city_name && *tz == company.time_zone
            });
            if !same_city {
                plan.city = Some((
                    company.city_code.clone(),
                    company.city_name.clone(),
                    company.time_zone.clone(),
                ));
            }
            let same_tenant = existing
                .as_ref()
                .is_some_and(|(_, name, _)| *name == company.name);
            plan.count(
                SheetKind::Company,
                existing.is_some(),
                same_tenant && same_city,
            );
            if !same_tenant {
                plan.tenant = Some((
                    tenant.to_owned(),
                    company.name.clone(),
                    company.city_code.clone(),
                ));
            }
            city_code = Some(company.city_code);
        }
    }
    let city_code = city_code.unwrap_or_default();

    // Work types: the store's, and those the reasons sheet brings.
    let mut work_types: HashMap<String, String> = current.work_types.clone();
    let mut reason_codes: HashMap<String, u32> = HashMap::new();
    for r in &q.reasons {
        let name = r
            .work_type_name
            .clone()
            .unwrap_or_else(|| r.work_type.clone());
        match work_types.get(&r.work_type) {
            None => plan.work_types.push((r.work_type.clone(), name.clone())),
            Some(known) if r.work_type_name.as_ref().is_some_and(|n| n != known) => {
                plan.work_types.push((r.work_type.clone(), name.clone()))
            }
            Some(_) => {}
        }
        work_types.insert(r.work_type.clone(), name);
    }
    plan.work_types.dedup_by(|a, b| a.0 == b.0);
    let reasons = std::mem::take(&mut q.reasons);
    for r in reasons {
        if let Some(first) = reason_codes.insert(r.code.clone(), r.at.row) {
            q.fault(
                r.at,
                "Код",
                format!("reason `{}` is also on row {first}", r.code),
            );
            continue;
        }
        let existing = current.reasons.get(&r.code);
        let same = existing.is_some_and(|e| {
            e.category == r.category
                && e.title == r.title
                && e.work_type == r.work_type
                && e.deadline_minutes == r.deadline_minutes
                && e.operator_text == r.operator_text
                && e.needs_supplier == r.needs_supplier
        });
        plan.count(SheetKind::Reasons, existing.is_some(), same);
        if !same {
            plan.reasons.push((existing.map(|e| e.id), r));
        }
    }

    // House groups and houses.
    let mut groups: HashMap<String, String> = current
        .groups
        .iter()
        .map(|(code, (_, name))| (code.clone(), name.clone()))
        .collect();
    let mut house_rows: HashMap<String, u32> = HashMap::new();
    let mut floors_of: HashMap<String, i64> = current
        .houses
        .iter()
        .map(|(k, h)| (k.clone(), h.floors))
        .collect();
    let houses = std::mem::take(&mut q.houses);
    for h in houses {
        if let Some(first) = house_rows.insert(h.key.clone(), h.at.row) {
            q.fault(
                h.at,
                "Дом",
                format!(
                    "the same house as row {first} (addresses compare as `{}`)",
                    h.key
                ),
            );
            continue;
        }
        let group_name = h.group_name.clone().unwrap_or_else(|| {
            groups
                .get(&h.group)
                .cloned()
                .unwrap_or_else(|| h.group.clone())
        });
        if groups.get(&h.group) != Some(&group_name)
            && !plan.groups.iter().any(|(c, _)| *c == h.group)
        {
            plan.groups.push((h.group.clone(), group_name.clone()));
        }
        groups.insert(h.group.clone(), group_name);
        let existing = current.houses.get(&h.key);
        let same = existing.is_some_and(|e| {
            e.group.as_deref() == Some(h.group.as_str())
                && h.floors.is_none_or(|f| f == e.floors)
                && h.entrances.is_none_or(|f| f == e.entrances)
                && h.lifts.is_none_or(|f| f == e.lifts)
                && h.notes.as_ref().is_none_or(|n| *n == e.notes)
        });
        plan.count(SheetKind::Houses, existing.is_some(), same);
        if let Some(f) = h.floors.or(existing.map(|e| e.floors)) {
            floors_of.insert(h.key.clone(), f);
        }
        if !same {
            plan.houses.push((existing.map(|e| e.id), h));
        }
    }
    let house_ref = |key: &str| -> Option<HouseRef> {
        match current.houses.get(key) {
            Some(h) => Some(HouseRef::Id(h.id)),
            None if house_rows.contains_key(key) => Some(HouseRef::New(key.to_owned())),
            None => None,
        }
    };

    // Apartments.
    let mut apartment_rows: HashMap<(String, String), u32> = HashMap::new();
    let apartments = std::mem::take(&mut q.apartments);
    for a in apartments {
        let Some(house) = house_ref(&a.key) else {
            q.fault(
                a.at,
                "Дом",
                "no such house in the «Дома» sheet or the store",
            );
            continue;
        };
        if let Some(first) = apartment_rows.insert((a.key.clone(), a.number.clone()), a.at.row) {
            q.fault(
                a.at,
                "Квартира",
                format!("apartment {} is also on row {first}", a.number),
            );
            continue;
        }
        if let (Some(floor), Some(&floors)) = (a.floor, floors_of.get(&a.key)) {
            if floors > 0 && floor > floors {
                q.fault(
                    a.at,
                    "Этаж",
                    format!("floor {floor} of a house of {floors} floors"),
                );
                continue;
            }
        }
        let existing = match &house {
            HouseRef::Id(id) => current.apartments.get(&(*id, a.number.clone())),
            HouseRef::New(_) => None,
        };
        let same = existing.is_some_and(|(e, f)| *e == a.entrance && *f == a.floor);
        plan.count(SheetKind::Apartments, existing.is_some(), same);
        if !same {
            plan.apartments.push(ApartmentWrite {
                house,
                number: a.number,
                entrance: a.entrance,
                floor: a.floor,
                exists: existing.is_some(),
            });
        }
    }

    // Suppliers.
    let mut supplier_rows: HashMap<String, u32> = HashMap::new();
    for s in std::mem::take(&mut q.suppliers) {
        if let Some(first) = supplier_rows.insert(s.code.clone(), s.at.row) {
            q.fault(
                s.at,
                "Код",
                format!("supplier `{}` is also on row {first}", s.code),
            );
            continue;
        }
        let phones = phones_text(&s.phones);
        let existing = current.suppliers.get(&s.code);
        if let Some(e) = existing.filter(|e| e.city != city_code) {
            q.fault(
                s.at,
                "Код",
                format!(
                    "supplier `{}` is another city's ({}); choose another code",
                    s.code, e.city
                ),
            );
            continue;
        }
        let same = existing.is_some_and(|e| e.name == s.name && e.phones == phones);
        plan.count(SheetKind::Suppliers, existing.is_some(), same);
        if !same {
            plan.suppliers
                .push((existing.map(|e| e.id), s.code, s.name, phones));
        }
    }

    // Employees, their shifts and absences.
    let mut writes: Vec<EmployeeWrite> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut employee_rows: HashMap<String, u32> = HashMap::new();
    for e in std::mem::take(&mut q.employees) {
        if let Some(first) = employee_rows.insert(e.code.clone(), e.at.row) {
            q.fault(
                e.at,
                "Табельный номер",
                format!("`{}` is also on row {first}", e.code),
            );
            continue;
        }
        if let Some(bad) = e.work_types.iter().find(|w| !work_types.contains_key(*w)) {
            q.fault(
                e.at,
                "Виды работ",
                format!("unknown work type `{bad}` (add it in the «Причины» sheet)"),
            );
            continue;
        }
        let existing = current.employees.get(&e.code);
        index.insert(e.code.clone(), writes.len());
        writes.push(EmployeeWrite {
            id: existing.map(|x| x.id),
            code: e.code,
            name: e.name,
            position: e.position,
            phones: phones_text(&e.phones),
            work_types: e.work_types,
            shifts: None,
            new_absences: Vec::new(),
        });
    }
    let mut staff = Staff {
        index,
        writes,
        current,
    };
    for s in std::mem::take(&mut q.shifts) {
        if let Some(i) = staff.find(&s.code, s.at, "Табельный номер", q) {
            staff.writes[i]
                .shifts
                .get_or_insert_with(Vec::new)
                .extend(s.shifts);
        }
    }
    let mut absence_count = Counts::default();
    for a in std::mem::take(&mut q.absences) {
        if let Some(i) = staff.find(&a.code, a.at, "Табельный номер", q) {
            let absence = Absence {
                kind: a.kind,
                starts_on: a.starts_on,
                ends_on: a.ends_on,
            };
            let had = current
                .employees
                .get(&a.code)
                .is_some_and(|e| e.absences.contains(&absence));
            if had || staff.writes[i].new_absences.contains(&absence) {
                absence_count.unchanged += 1;
            } else {
                absence_count.created += 1;
                staff.writes[i].new_absences.push(absence);
            }
        }
    }
    if absence_count != Counts::default() {
        plan.counts.insert(SheetKind::Absences, absence_count);
    }

    // The responsibility matrix (before the employees are counted: it needs their
    // work types as the import leaves them).
    let mut cell_rows: HashMap<(String, String), u32> = HashMap::new();
    for r in std::mem::take(&mut q.responsibility) {
        if !groups.contains_key(&r.group) {
            q.fault(
                r.at,
                "Группа домов",
                format!(
                    "no house group `{}` in the «Дома» sheet or the store",
                    r.group
                ),
            );
            continue;
        }
        if !work_types.contains_key(&r.work_type) {
            q.fault(
                r.at,
                "Вид работ",
                format!("unknown work type `{}`", r.work_type),
            );
            continue;
        }
        if let Some(first) = cell_rows.insert((r.group.clone(), r.work_type.clone()), r.at.row) {
            q.fault(
                r.at,
                "Вид работ",
                format!("this cell of the matrix is also on row {first}"),
            );
            continue;
        }
        let mut ok = true;
        let mut levels: [Vec<EmployeeRef>; 3] = Default::default();
        let mut level_ids: [Vec<Option<i64>>; 3] = Default::default();
        for (l, header) in ["Уровень 1", "Уровень 2", "Уровень 3"]
            .into_iter()
            .enumerate()
        {
            for code in &r.levels[l] {
                match staff.resolve(code, r.at, header, Some(&r.work_type), q) {
                    Some((e, id)) => {
                        levels[l].push(e);
                        level_ids[l].push(id);
                    }
                    None => ok = false,
                }
            }
        }
        let mut escalation = [(None, Some(None)), (None, Some(None)), (None, Some(None))];
        for (slot, (code, header)) in escalation.iter_mut().zip([
            (&r.responsible, "Ответственный"),
            (&r.manager, "Руководитель"),
            (&r.head, "Директор"),
        ]) {
            if let Some(c) = code {
                match staff.resolve(c, r.at, header, None, q) {
                    Some((e, id)) => *slot = (Some(e), Some(id)),
                    None => ok = false,
                }
            }
        }
        if !ok {
            continue;
        }
        let [(responsible, rid), (manager, mid), (head, hid)] = escalation;
        let existing = current.cells.get(&(r.group.clone(), r.work_type.clone()));
        let same = existing.is_some_and(|c| {
            (0..3).all(|l| {
                level_ids[l]
                    .iter()
                    .map(|id| id.unwrap_or(-1))
                    .eq(c.levels[l].iter().copied())
            }) && rid == Some(c.responsible)
                && mid == Some(c.manager)
                && hid == Some(c.head)
        });
        plan.count(SheetKind::Responsibility, existing.is_some(), same);
        if !same {
            plan.cells.push(CellWrite {
                group: r.group,
                work_type: r.work_type,
                levels,
                responsible,
                manager,
                head,
            });
        }
    }

    // Now every employee write is known: count and keep those that change.
    let mut shifts_count = Counts::default();
    let writes = staff.writes;
    let mut writes = writes;
    for w in &mut writes {
        let existing =
            w.id.and_then(|id| current.employees.values().find(|e| e.id == id));
        if let Some(shifts) = &mut w.shifts {
            shifts.sort_by_key(|s| (s.weekday, s.starts_min, s.ends_min));
            shifts.dedup();
            match existing {
                Some(e) if sorted(&e.shifts) == *shifts => {
                    shifts_count.unchanged += 1;
                    w.shifts = None;
                }
                Some(e) if !e.shifts.is_empty() => shifts_count.changed += 1,
                _ => shifts_count.created += 1,
            }
        }
        if employee_rows.contains_key(&w.code) {
            let same = existing.is_some_and(|e| {
                e.name == w.name && e.position == w.position && e.phones == w.phones && {
                    let mut a = e.work_types.clone();
                    let mut b = w.work_types.clone();
                    a.sort();
                    b.sort();
                    b.dedup();
                    a == b
                }
            });
            plan.count(SheetKind::Employees, existing.is_some(), same);
        }
    }
    if shifts_count != Counts::default() {
        plan.counts.insert(SheetKind::Shifts, shifts_count);
    }
    plan.employees = writes
        .into_iter()
        .filter(|w| {
            let existing =
                w.id.and_then(|id| current.employees.values().find(|e| e.id == id));
            let details_same = existing.is_some_and(|e| {
                let mut a = e.work_types.clone();
                let mut b = w.work_types.clone();
                a.sort();
                b.sort();
                b.dedup();
                e.name == w.name && e.position == w.position && e.phones == w.phones && a == b
            });
            !details_same || w.shifts.is_some() || !w.new_absences.is_empty()
        })
        .collect();

    // Contacts.
    let mut contact_keys: HashSet<(String, String, String)> = HashSet::new();
    for c in std::mem::take(&mut q.contacts) {
        let Some(house) = house_ref(&c.key) else {
            q.fault(
                c.at,
                "Дом",
                "no such house in the «Дома» sheet or the store",
            );
            continue;
        };
        if !contact_keys.insert((
            c.phone.as_str().to_owned(),
            c.key.clone(),
            c.apartment.clone(),
        )) {
            continue;
        }
        let exists = match &house {
            HouseRef::Id(id) => {
                current
                    .contacts
                    .contains(&(c.phone.as_str().to_owned(), *id, c.apartment.clone()))
            }
            HouseRef::New(_) => false,
        };
        plan.count(SheetKind::Contacts, exists, true);
        if !exists {
            plan.contacts
                .push((c.phone.as_str().to_owned(), house, c.apartment));
        }
    }
    plan
}

/// The employees the import writes, found by personnel number.
struct Staff<'a> {
    index: HashMap<String, usize>,
    writes: Vec<EmployeeWrite>,
    current: &'a Current,
}

impl Staff<'_> {
    /// The write of employee `code`: listed in the employees sheet, or the store's
    /// (added unchanged); a fault at `header` of `at` when neither has them.
    fn find(
        &mut self,
        code: &str,
        at: At,
        header: &'static str,
        q: &mut Questionnaire,
    ) -> Option<usize> {
        if let Some(&i) = self.index.get(code) {
            return Some(i);
        }
        let Some(e) = self.current.employees.get(code) else {
            q.fault(
                at,
                header,
                format!("no employee `{code}` in the «Сотрудники» sheet or the store"),
            );
            return None;
        };
        self.index.insert(code.to_owned(), self.writes.len());
        self.writes.push(EmployeeWrite {
            id: Some(e.id),
            code: code.to_owned(),
            name: e.name.clone(),
            position: e.position.clone(),
            phones: e.phones.clone(),
            work_types: e.work_types.clone(),
            shifts: None,
            new_absences: Vec::new(),
        });
        Some(self.writes.len() - 1)
    }

    /// An employee named in the matrix, checked to do `work_type` when given.
    fn resolve(
        &mut self,
        code: &str,
        at: At,
        header: &'static str,
        work_type: Option<&str>,
        q: &mut Questionnaire,
    ) -> Option<(EmployeeRef, Option<i64>)> {
        let i = self.find(code, at, header, q)?;
        let w = &self.writes[i];
        if let Some(wt) = work_type.filter(|wt| !w.work_types.iter().any(|x| x == wt)) {
            q.fault(
                at,
                header,
                format!("`{code}` ({}) does not do work type `{wt}`", w.name),
            );
            return None;
        }
        Some(match w.id {
            Some(id) => (EmployeeRef::Id(id), Some(id)),
            None => (EmployeeRef::New(code.to_owned()), None),
        })
    }
}

fn sorted(shifts: &[Shift]) -> Vec<Shift> {
    let mut s = shifts.to_vec();
    s.sort_by_key(|s| (s.weekday, s.starts_min, s.ends_min));
    s.dedup();
    s
}
