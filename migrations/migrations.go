// Package migrations embeds the SQL migrations of every cosell service, one
// folder per owning service (NNNNNN_name.up.sql / .down.sql, golang-migrate
// format). Each service migrates only its own folder, into its own Postgres
// schema (named after the service with dashes as underscores), with its own
// migrations table, so services can be deployed and migrated independently.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed ingress partnercenter-adapter salesforce-adapter mapper
var files embed.FS

// Services lists the services that own migrations, in the order a fresh
// database is best migrated.
func Services() []string {
	return []string{"ingress", "partnercenter-adapter", "salesforce-adapter", "mapper"}
}

// FS returns the migrations of one service.
func FS(service string) (fs.FS, error) {
	for _, s := range Services() {
		if s == service {
			return fs.Sub(files, service)
		}
	}
	return nil, fmt.Errorf("migrations: unknown service %q (known: %s)", service, strings.Join(Services(), ", "))
}

// Schema returns the Postgres schema that holds a service's tables.
func Schema(service string) string { return strings.ReplaceAll(service, "-", "_") }
