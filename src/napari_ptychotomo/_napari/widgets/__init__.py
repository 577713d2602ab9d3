"""The docked widgets, one per module, thin shells over the engines; their fields come from
the engines' parameter descriptions through :func:`.fields.field_widget`."""
