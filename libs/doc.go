// Package libs is the root of cosell's shared libraries module: bus (JetStream),
// store (Postgres), telemetry (OpenTelemetry and slog), config (environment
// configuration) and the generated event types. It never imports services.
package libs
