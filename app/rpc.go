package app

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

var errorType = reflect.TypeFor[error]()

// rpcMethod is one exported method of a bound service, callable with JSON arguments the
// way Wails calls it.
type rpcMethod struct {
	fn     reflect.Value
	params []reflect.Type
	// result is true when the method returns a value before its error.
	result bool
	// fallible is true when the last return value is an error.
	fallible bool
}

// rpcRegistry maps "Service.Method" to every exported method of the bound services. It is
// built by reflection from App.Bindings, the same list Wails binds, so the web mode
// serves exactly what the desktop binds.
type rpcRegistry map[string]rpcMethod

func newRPCRegistry(services []any) (rpcRegistry, error) {
	reg := rpcRegistry{}
	for _, svc := range services {
		v := reflect.ValueOf(svc)
		t := v.Type()
		if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			return nil, fmt.Errorf("bound service %s: want a pointer to a struct", t)
		}
		name := t.Elem().Name()
		for i := range t.NumMethod() {
			m := t.Method(i)
			fn := v.Method(i)
			ft := fn.Type()
			rm := rpcMethod{fn: fn}
			for j := range ft.NumIn() {
				rm.params = append(rm.params, ft.In(j))
			}
			switch ft.NumOut() {
			case 0:
			case 1:
				if ft.Out(0) == errorType {
					rm.fallible = true
				} else {
					rm.result = true
				}
			case 2:
				if ft.Out(1) != errorType {
					return nil, fmt.Errorf("%s.%s: the second result must be an error", name, m.Name)
				}
				rm.result, rm.fallible = true, true
			default:
				return nil, fmt.Errorf("%s.%s: at most a result and an error", name, m.Name)
			}
			reg[name+"."+m.Name] = rm
		}
	}
	return reg, nil
}

// names lists the registered methods, sorted.
func (reg rpcRegistry) names() []string {
	out := make([]string, 0, len(reg))
	for k := range reg {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// call decodes the JSON arguments (an array, one element per parameter; an empty body is
// no argument), calls the method and returns its result, or the method's error. A
// malformed call is an *Error with CodeBadRequest.
func (m rpcMethod) call(name string, body []byte) (any, error) {
	var raw []json.RawMessage
	if len(body) > 0 {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, newError(CodeBadRequest, name+": the body must be a JSON array of the arguments")
		}
	}
	if len(raw) != len(m.params) {
		return nil, newError(CodeBadRequest, fmt.Sprintf("%s takes %d argument(s), got %d", name, len(m.params), len(raw)))
	}
	args := make([]reflect.Value, len(m.params))
	for i, t := range m.params {
		p := reflect.New(t)
		if err := json.Unmarshal(raw[i], p.Interface()); err != nil {
			return nil, newError(CodeBadRequest, fmt.Sprintf("%s: argument %d: want %s", name, i+1, jsonKind(t)))
		}
		args[i] = p.Elem()
	}
	out := m.fn.Call(args)
	if m.fallible {
		if err, _ := out[len(out)-1].Interface().(error); err != nil {
			return nil, err
		}
	}
	if m.result {
		return out[0].Interface(), nil
	}
	return nil, nil
}

// jsonKind names the JSON a Go type decodes from, for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
