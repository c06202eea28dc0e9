package ctl

import (
	"context"
	"errors"

	"github.com/cosell/cosell/services/mapper/mapping"
)

// checkDescribe checks cfg against the Salesforce describe of its object
// (fields exist and are updateable, types fit, picklist values are valid).
// It returns the problems found and a sentence saying what was checked.
func checkDescribe(ctx context.Context, e *env, cfg *mapping.Config, describeFile string) ([]mapping.Problem, string, error) {
	describe, how, err := fetchDescribe(ctx, e, cfg.Object, describeFile)
	if err != nil {
		return nil, "", err
	}
	err = mapping.ValidateAgainstDescribe(cfg, describe)
	var verr *mapping.ValidationError
	switch {
	case err == nil:
		return nil, "checked against " + how, nil
	case errors.As(err, &verr):
		return verr.Problems, "checked against " + how, nil
	default:
		return nil, "", err
	}
}
