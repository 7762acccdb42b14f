//! The ticket store: tenants, houses, employees, reasons, tickets, contacts, the call
//! journal, recordings, dial jobs, outages and debtors, on SQLite or PostgreSQL.
