'use strict';
// Pages, widgets (view sections) and their fields, as grist-core's sandbox keeps them in
// _grist_Views, _grist_Pages, _grist_Views_section and _grist_Views_section_field, for what
// the REST endpoints do (sandbox/grist/useractions.py):
//   AddTable (POST /tables)      doAddTable: doAddView makes a page (_grist_Views, _grist_Pages)
//                                with one 'record' section, then create_plain_view_section the
//                                raw section (no page), then _create_record_card_view_section
//                                the record card ('single'); _RebuildViewFields gives each a
//                                field per visible column (not manualSort nor gristHelper_*).
//   AddVisibleColumn (POST/PUT /columns)  AddColumn: a field in the raw section and in the
//                                record card; then one in every other 'record' section.
//   doAddColumn (gristHelper_Display)     no field anywhere.
//   RemoveColumn                 the column's fields go with it.
//   BulkRemoveRecord _grist_Views_section_field  _removeViewSectionFieldRecords: refused for a
//                                raw section's field ("Cannot remove raw view section field").
// Every change takes the request's transaction (store.js Tx) so that a failed bundle leaves
// nothing behind.

const { ApiError } = require('./errors');

// column.is_visible_column
function isVisibleColumn(colId) { return colId !== 'manualSort' && !colId.startsWith('gristHelper_'); }

class Views {
  constructor() {
    this.views = new Map();     // id -> {name, type}
    this.pages = new Map();     // id -> {viewRef, indentation, pagePos}
    this.sections = new Map();  // id -> {tableRef, parentId, parentKey, title, ...}
    this.fields = new Map();    // id -> {parentId, parentPos, colRef, ...}
    this.next = { views: 1, pages: 1, sections: 1, fields: 1 };
  }

  _add(kind, rec, tx) {
    const id = this.next[kind]++;
    this[kind].set(id, rec);
    tx.push(() => { this[kind].delete(id); this.next[kind] = id; });
    return id;
  }

  _addField(sectionId, col, tx) {
    return this._add('fields', {
      parentId: sectionId, parentPos: this.next.fields, colRef: col.colRef, width: 0,
      widgetOptions: '', displayCol: 0, visibleCol: 0, filter: '', rules: null,
    }, tx);
  }

  // _RebuildViewFields for a new section: a field per visible column, in column order.
  _addSection(table, parentId, parentKey, title, tx) {
    const id = this._add('sections', {
      tableRef: table.ref, parentId, parentKey, title, borderWidth: 1, defaultWidth: 100,
      sortColRefs: '[]', layoutSpec: '', options: '', theme: '',
    }, tx);
    for (const c of table.columns) { if (isVisibleColumn(c.colId)) { this._addField(id, c, tx); } }
    return id;
  }

  // doAddTable with primary_view, raw_section and record_card_section (AddTable).
  addTable(table, title, tx) {
    const viewId = this._add('views', { name: title, type: 'raw_data' }, tx);
    this._add('pages', { viewRef: viewId, indentation: 0, pagePos: this.next.pages }, tx);
    this._addSection(table, viewId, 'record', '', tx);
    const raw = this._addSection(table, 0, 'record', title === table.tableId ? '' : title, tx);
    const card = this._addSection(table, 0, 'single', '', tx);
    const before = [table.primaryViewId, table.rawViewSectionRef, table.recordCardViewSectionRef];
    table.primaryViewId = viewId;
    table.rawViewSectionRef = raw;
    table.recordCardViewSectionRef = card;
    tx.push(() => { [table.primaryViewId, table.rawViewSectionRef, table.recordCardViewSectionRef] = before; });
  }

  // AddVisibleColumn: AddColumn's raw and record card fields, then every other 'record'
  // section of the table. (The record card gets one only while unmodified; the emulator has
  // no way to modify it.)
  addVisibleColumn(table, col, tx) {
    if (!isVisibleColumn(col.colId)) { return; }
    if (table.rawViewSectionRef) { this._addField(table.rawViewSectionRef, col, tx); }
    if (table.recordCardViewSectionRef) { this._addField(table.recordCardViewSectionRef, col, tx); }
    for (const [id, s] of this.sections) {
      if (s.tableRef === table.ref && s.parentKey === 'record' && id !== table.rawViewSectionRef) {
        this._addField(id, col, tx);
      }
    }
  }

  removeColumnFields(col, tx) {
    for (const [id, f] of [...this.fields]) {
      if (f.colRef === col.colRef) { this._delete('fields', id, tx); }
    }
  }

  _delete(kind, id, tx) {
    const rec = this[kind].get(id);
    this[kind].delete(id);
    tx.push(() => { this[kind].set(id, rec); });
  }

  // BulkRemoveRecord on _grist_Views_section_field.
  removeFields(rowIds, isRawSection, tx) {
    for (const id of rowIds) {
      const f = this.fields.get(id);
      if (!Number.isInteger(id) || !f) {
        throw new ApiError(400, `Error manipulating data: [Sandbox] KeyError ${id}`);
      }
      if (isRawSection(f.parentId)) {
        throw new ApiError(400, 'Error manipulating data: [Sandbox] ValueError Cannot remove raw view section field');
      }
    }
    for (const id of new Set(rowIds)) { this._delete('fields', id, tx); }
  }

  // Rows of a metadata table, {id, fields}, or null if it is not one of these.
  records(tableId) {
    const kind = {
      _grist_Views: 'views', _grist_Pages: 'pages', _grist_Views_section: 'sections',
      _grist_Views_section_field: 'fields',
    }[tableId];
    if (!kind) { return null; }
    return [...this[kind].entries()].sort((a, b) => a[0] - b[0]).map(([id, r]) => ({ id, fields: { ...r } }));
  }
}

module.exports = { Views, isVisibleColumn };
