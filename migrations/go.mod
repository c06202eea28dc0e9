module github.com/cosell/cosell/migrations

go 1.26
