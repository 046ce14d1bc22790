package main

import (
	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/config"
	"github.com/eventrt/eventrt/internal/redisconn"
)

// redisConn maps the configuration onto redisconn's options (which validate, and never quote a
// password in their errors).
func redisConn(o config.Options) redisconn.Options {
	return redisconn.Options{
		Host: o.RedisHost, Port: o.RedisPort, Username: o.RedisUsername, Password: string(o.RedisPassword),
		DB: o.RedisDB, URL: string(o.RedisURL), CAFile: o.RedisCAFile, ClientName: "eventrt",
	}
}

func redisOptions(o config.Options) (rueidis.ClientOption, error) {
	return redisConn(o).ClientOption()
}
