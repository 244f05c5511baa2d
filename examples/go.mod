module example.com/continuumwebhooks

go 1.19
