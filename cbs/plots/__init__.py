"""Paper figures on matplotlib: one module per figure family, one shared style (`cbs.plots.style`)."""
