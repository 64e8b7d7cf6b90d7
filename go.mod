module github.com/hangar-ci/hangar

go 1.26.8

require github.com/bmatcuk/doublestar/v4 v4.10.4

require go.yaml.in/yaml/v4 v4.0.0
