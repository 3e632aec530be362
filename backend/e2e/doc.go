// Package e2e holds the end-to-end tests of mooxsync: agents run as real processes
// (bin/mooxsync-agent, built once per run) on loopback, each next to its own application
// database (SQLite, PostgreSQL or MySQL/MariaDB), enrolled and steered through the fleet
// client exactly as the control center does it, while the tests write to the application
// databases with plain SQL and compare what arrives.
//
// The PostgreSQL and MySQL/MariaDB servers come from MOOXSYNC_TEST_POSTGRES and
// MOOXSYNC_TEST_MYSQL (see sqldbtest); without them those tests skip, or fail with CI=true.
package e2e
