package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Environment variables the contract reads (the only ones Decide reads).
const (
	EnvMultiplex   = "GATEWAY_MULTIPLEX_PROFILES"
	EnvNoSupervise = "HERMES_GATEWAY_NO_SUPERVISE"
)

// ConfigFile is hermes's configuration, in HERMES_HOME; only
// gateway.multiplex_profiles is read from it.
const ConfigFile = "config.yaml"

// Where the multiplex setting came from.
const (
	MultiplexFromEnv    = "env"
	MultiplexFromConfig = "config"
)

// Multiplex is whether one gateway (the default profile's) serves every
// profile, and why.
type Multiplex struct {
	On     bool
	Source string // MultiplexFromEnv or MultiplexFromConfig
	// Warning is set when config.yaml decided and could not be used
	// (missing, unreadable, too large, malformed, or a value that is neither
	// a bool nor a string): multiplexing is then off. Say it once.
	Warning error
}

// ReadMultiplex decides multiplexing as hermes does: env
// GATEWAY_MULTIPLEX_PROFILES when it is set and not empty, else
// gateway.multiplex_profiles in home/config.yaml (read following symlinks,
// at most MaxStateSize bytes). Truthiness is Truthy's. It never fails: any
// problem with config.yaml means off, with a Warning.
func ReadMultiplex(home string, getenv func(string) string) Multiplex {
	if v := getenv(EnvMultiplex); v != "" {
		return Multiplex{On: Truthy(v), Source: MultiplexFromEnv}
	}
	m := Multiplex{Source: MultiplexFromConfig}
	path := filepath.Join(home, ConfigFile)
	data, reason := readSmallFile(path)
	if reason != "" {
		m.Warning = fmt.Errorf("%s: %s: gateway multiplexing is off (set gateway.multiplex_profiles there, or env %s)",
			path, reason, EnvMultiplex)
		return m
	}
	on, err := ParseMultiplexConfig(data)
	if err != nil {
		m.Warning = fmt.Errorf("%s: %w: gateway multiplexing is off until it is fixed", path, err)
		return m
	}
	m.On = on
	return m
}

// ErrConfigMalformed is wrapped by every ParseMultiplexConfig error.
var ErrConfigMalformed = errors.New("malformed")

// gatewayConfig is the one part of config.yaml read here. Decoding into
// a struct makes a gateway that is not a mapping an error, not a guess.
type gatewayConfig struct {
	Gateway *struct {
		MultiplexProfiles any `yaml:"multiplex_profiles"`
	} `yaml:"gateway"`
}

// ParseMultiplexConfig reads gateway.multiplex_profiles from the bytes of a
// config.yaml: a YAML bool is itself; a string is Truthy's answer; absent
// or null (and an empty file) is off. Errors (wrapping ErrConfigMalformed):
// not YAML, more than one document, a top level or gateway that is not a
// mapping, a duplicate key, or a value of another type (a number, a list).
func ParseMultiplexConfig(data []byte) (bool, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var cfg gatewayConfig
	switch err := dec.Decode(&cfg); {
	case errors.Is(err, io.EOF): // empty, or only comments
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%w: %w", ErrConfigMalformed, err)
	}
	// PyYAML's safe_load refuses a stream of several documents.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%w: more than one YAML document", ErrConfigMalformed)
	}
	if cfg.Gateway == nil {
		return false, nil
	}
	switch v := cfg.Gateway.MultiplexProfiles.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		return Truthy(v), nil
	default:
		return false, fmt.Errorf("%w: gateway.multiplex_profiles is a %T, want a bool or a string", ErrConfigMalformed, v)
	}
}
