"""What batch inference produces: result rows, tiling large photos, rusted area and grade, previews, the report."""
