"""Models as stored data: model and architecture tables, fit state, and what a fit returns."""
