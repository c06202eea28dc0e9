module github.com/cosell/cosell/cli

go 1.26.0

require (
	github.com/jackc/pgx/v5 v5.12.0
	github.com/nats-io/nats.go v1.55.0
	google.golang.org/protobuf v1.36.12
)
