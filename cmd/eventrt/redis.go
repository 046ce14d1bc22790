package main

import (
	"net"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/config"
)

// redisOptions turns the configuration into rueidis options.
func redisOptions(o config.Options) (rueidis.ClientOption, error) {
	if o.RedisURL != "" {
		co, err := rueidis.ParseURL(string(o.RedisURL))
		if err != nil {
			return co, &config.InvalidError{Name: "REDIS_URL", Value: "[redacted]", Reason: err}
		}
		co.DisableCache = true
		return co, nil
	}
	return rueidis.ClientOption{
		InitAddress:  []string{net.JoinHostPort(o.RedisHost, strconv.Itoa(o.RedisPort))},
		Username:     o.RedisUsername,
		Password:     string(o.RedisPassword),
		SelectDB:     o.RedisDB,
		DisableCache: true,
		ClientName:   "eventrt",
	}, nil
}
