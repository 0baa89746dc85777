package controller

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// openAPI describes the routes as an OpenAPI 3.1 document, with schemas
// derived from the wire types by reflection.
func openAPI(routes []route) map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(method, path),
			"responses": map[string]any{
				strconv.Itoa(rt.status): response(g, rt.resp),
				"default":               map[string]any{"description": "an error", "content": jsonContent(g.schema(reflect.TypeOf(api.Error{})))},
			},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.req != nil {
			op["requestBody"] = map[string]any{"required": true, "content": jsonContent(g.schema(reflect.TypeOf(rt.req)))}
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "pier controller API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         g.defs,
			"securitySchemes": map[string]any{"apiKey": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"apiKey": []any{}}},
	}
}

func operationID(method, path string) string {
	parts := []string{strings.ToLower(method)}
	for _, p := range strings.Split(strings.TrimPrefix(path, "/v1/"), "/") {
		p = strings.Trim(p, "{}")
		parts = append(parts, strings.ReplaceAll(p, "-", "_"))
	}
	return strings.Join(parts, "_")
}

func response(g *schemaGen, v any) map[string]any {
	if v == nil {
		return map[string]any{"description": "done"}
	}
	return map[string]any{"description": "ok", "content": jsonContent(g.schema(reflect.TypeOf(v)))}
}

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

// schemaGen makes JSON schemas of Go types, named struct types once each
// under components/schemas.
type schemaGen struct{ defs map[string]any }

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(api.Duration(0))
)

func (g *schemaGen) schema(t reflect.Type) any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "string", "description": "a duration like 30s or 5m"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t)
		}
		if _, ok := g.defs[t.Name()]; !ok {
			g.defs[t.Name()] = map[string]any{} // placeholder against recursion
			g.defs[t.Name()] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			if sub, ok := g.object(f.Type)["properties"].(map[string]any); ok {
				for k, v := range sub {
					props[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
	}
	return map[string]any{"type": "object", "properties": props}
}
