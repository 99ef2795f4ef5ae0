package rules

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Names of the CEL objects and of the internal price call. A name starting
// with @ cannot be written in an expression, only made by the price macro.
const (
	eventType   = "rules.Event"
	deviceType  = "rules.Device"
	sessionType = "rules.Session"
	ctxVar      = "@ctx"
	priceFunc   = "@price"
)

var ctxType = types.NewOpaqueType("rules.context")

// envs holds the CEL environments: bill is base plus `delta`, for the
// amount of a bill rule. They depend on no tenant or product (the tariffs
// come with each evaluation), so they are built once and, being immutable,
// shared by every Program.
type envs struct{ base, bill *cel.Env }

var celEnvs = sync.OnceValues(newEnvs)

func newEnvs() (envs, error) {
	base, err := cel.NewEnv(
		cel.CustomTypeProvider(newProvider()),
		cel.Variable("event", types.NewObjectType(eventType)),
		cel.Variable("device", types.NewObjectType(deviceType)),
		cel.Variable("session", types.NewObjectType(sessionType)),
		cel.Variable("last_reading", cel.IntType),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("hour", cel.IntType),
		cel.Variable(ctxVar, ctxType),
		cel.Macros(cel.GlobalMacro("price", 2, expandPrice)),
		cel.Function(priceFunc, cel.Overload("rules_price", []*cel.Type{ctxType, cel.StringType, cel.IntType}, cel.IntType,
			cel.FunctionBinding(priceOp))),
		cel.Function("ceil_div", cel.Overload("rules_ceil_div", []*cel.Type{cel.IntType, cel.IntType}, cel.IntType,
			cel.BinaryBinding(ceilDiv))),
		cel.ParserExpressionSizeLimit(ExprBytesMax),
	)
	if err != nil {
		return envs{}, err
	}
	bill, err := base.Extend(cel.Variable("delta", cel.IntType))
	return envs{base, bill}, err
}

// expandPrice rewrites price(t, q) into @price(@ctx, t, q), so the price
// is taken at the evaluation's time with the program's tariffs.
func expandPrice(eh cel.MacroExprFactory, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
	return eh.NewCall(priceFunc, eh.NewIdent(ctxVar), args[0], args[1]), nil
}

func priceOp(args ...ref.Val) ref.Val {
	if len(args) != 3 {
		return types.NoSuchOverloadErr()
	}
	c, ok1 := args[0].(*evalCtx)
	name, ok2 := args[1].(types.String)
	q, ok3 := args[2].(types.Int)
	if !ok1 || !ok2 || !ok3 {
		return types.NoSuchOverloadErr()
	}
	t, err := c.p.tariff(string(name))
	if err != nil {
		return types.WrapErr(err)
	}
	v, err := t.priceAt(c.in.Now, int64(q))
	if err != nil {
		return types.WrapErr(err)
	}
	return types.Int(v)
}

func ceilDiv(a, b ref.Val) ref.Val {
	x, ok1 := a.(types.Int)
	y, ok2 := b.(types.Int)
	if !ok1 || !ok2 {
		return types.NoSuchOverloadErr()
	}
	if y <= 0 {
		return types.NewErr("ceil_div: divisor %d is not positive", int64(y))
	}
	q := x / y
	if x%y != 0 && x > 0 {
		q++
	}
	return q
}

// provider declares the input objects to CEL. Their fields are read from
// the Go values directly, with no conversion of the whole object.
type provider struct {
	*types.Registry
	fields map[string]map[string]*types.FieldType
}

func newProvider() *provider {
	return &provider{Registry: types.NewEmptyRegistry(), fields: map[string]map[string]*types.FieldType{
		eventType: {
			"type": field(types.StringType, func(e *Event) any { return e.Type }),
			"num":  field(types.NewMapType(types.StringType, types.IntType), func(e *Event) any { return e.Num }),
			"str":  field(types.NewMapType(types.StringType, types.StringType), func(e *Event) any { return e.Str }),
		},
		deviceType: {
			"id":       field(types.StringType, func(d *Device) any { return d.ID }),
			"firmware": field(types.StringType, func(d *Device) any { return d.Firmware }),
			"attested": field(types.BoolType, func(d *Device) any { return types.Bool(d.Attested) }),
			"tamper":   field(types.BoolType, func(d *Device) any { return types.Bool(d.Tamper) }),
			"battery":  field(types.IntType, func(d *Device) any { return types.Int(d.Battery) }),
			"reported": field(types.NewMapType(types.StringType, types.DynType), func(d *Device) any { return d.Reported }),
		},
		sessionType: {
			"open":     field(types.BoolType, func(s *Session) any { return types.Bool(s.Open) }),
			"held":     field(types.IntType, func(s *Session) any { return types.Int(s.Held) }),
			"captured": field(types.IntType, func(s *Session) any { return types.Int(s.Captured) }),
		},
	}}
}

func field[T any](t *types.Type, get func(*T) any) *types.FieldType {
	return &types.FieldType{
		Type:  t,
		IsSet: func(any) bool { return true },
		GetFrom: func(o any) (any, error) {
			if v, ok := o.(*T); ok && v != nil {
				return get(v), nil
			}
			return nil, fmt.Errorf("no field on %T", o)
		},
	}
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.fields[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	fs, ok := p.fields[name]
	if !ok {
		return p.Registry.FindStructFieldNames(name)
	}
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	return names, true
}

func (p *provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if fs, ok := p.fields[name]; ok {
		f, ok := fs[fieldName]
		return f, ok
	}
	return p.Registry.FindStructFieldType(name, fieldName)
}

// NewValue refuses to build the input objects in an expression
// (rules.Event{...}): they exist only as the evaluation's input.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.fields[name]; ok {
		return types.NewErr("cannot create %s", name)
	}
	return p.Registry.NewValue(name, fields)
}

// activation binds the variables of one evaluation.
type activation struct {
	in    *Input
	p     *Program
	delta int64
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return &a.in.Event, true
	case "device":
		return &a.in.Device, true
	case "session":
		return &a.in.Session, true
	case "last_reading":
		return types.Int(a.in.LastReading), true
	case "delta":
		return types.Int(a.delta), true
	case "now":
		return types.Timestamp{Time: a.in.Now}, true
	case "hour":
		return types.Int(a.in.Now.UTC().Hour()), true
	case ctxVar:
		return (*evalCtx)(a), true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// evalCtx is the activation seen as the CEL value @ctx, the hidden first
// argument of @price.
type evalCtx activation

func (c *evalCtx) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("the evaluation context has no native value")
}
func (c *evalCtx) ConvertToType(ref.Type) ref.Val {
	return types.NewErr("the evaluation context has no conversion")
}
func (c *evalCtx) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(c)) }
func (c *evalCtx) Type() ref.Type          { return ctxType }
func (c *evalCtx) Value() any              { return c }
